package kube

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestStagingModules(t *testing.T) {
	gomod := []byte(`module k8s.io/kubernetes

require k8s.io/api v0.0.0

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/sample-cli-plugin => ./staging/src/k8s.io/sample-cli-plugin
	k8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)

replace example.com/other => example.com/other v1.0.0
`)
	got := stagingModules(gomod)
	if want := []string{"k8s.io/api", "k8s.io/client-go"}; !slices.Equal(got, want) {
		t.Fatalf("stagingModules = %v, want %v", got, want)
	}
}

func TestMissingNamesEveryPart(t *testing.T) {
	t.Setenv(DirEnv, t.TempDir())
	got := Missing()
	want := []string{binEtcd, binAPIServer, binController, binScheduler, binKubectl, binKwok, partStages, partCRDs}
	if !slices.Equal(got, want) {
		t.Fatalf("Missing() in an empty dir = %v, want %v", got, want)
	}
}

func TestCountWrites(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.log")
	lines := `{"kind":"Event","stage":"ResponseComplete","verb":"create","user":{"username":"system:serviceaccount:web:worker"},"responseStatus":{"code":201}}
{"kind":"Event","stage":"ResponseComplete","verb":"patch","user":{"username":"system:serviceaccount:web:worker"},"responseStatus":{"code":403}}
{"kind":"Event","stage":"ResponseComplete","verb":"get","user":{"username":"system:serviceaccount:web:worker"}}
{"kind":"Event","stage":"ResponseComplete","verb":"delete","user":{"username":"drillship-admin"}}
{"kind":"Event","stage":"ResponseComplete","verb":"upd`
	if err := os.WriteFile(log, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := CountWrites(log, "system:serviceaccount:web:worker"); err != nil || n != 2 {
		t.Fatalf("CountWrites(worker) = %d, %v; want 2", n, err)
	}
	if n, err := CountWrites(log, AdminUser); err != nil || n != 1 {
		t.Fatalf("CountWrites(admin) = %d, %v; want 1", n, err)
	}
}

// TestBuild builds what is missing into Dir() when DRILLSHIP_KUBE_BUILD=1
// (the lab's `build` command is the usual way).
func TestBuild(t *testing.T) {
	if os.Getenv("DRILLSHIP_KUBE_BUILD") != "1" {
		t.Skip("set DRILLSHIP_KUBE_BUILD=1 to build the cluster binaries")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	if err := Build(ctx, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if m := Missing(); len(m) > 0 {
		t.Fatalf("missing after Build: %v", m)
	}
}

func TestLabStage(t *testing.T) {
	node := []byte(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: node-heartbeat}
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: .status.phase, operator: In, values: [Running]}
  delay: {durationMilliseconds: 20000, jitterDurationMilliseconds: 25000}
  next:
    statusTemplate: |
      conditions: []
`)
	out, err := labStage(node)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Spec struct {
			Selector struct {
				MatchAnnotations map[string]string `yaml:"matchAnnotations"`
				MatchExpressions []map[string]any  `yaml:"matchExpressions"`
			}
			Delay struct {
				Duration int `yaml:"durationMilliseconds"`
				Jitter   int `yaml:"jitterDurationMilliseconds"`
			}
			Next struct {
				StatusTemplate string `yaml:"statusTemplate"`
			}
		}
	}
	if err := yaml.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	if st.Spec.Selector.MatchAnnotations[KwokAnnotation] != KwokAnnotationFake || len(st.Spec.Selector.MatchExpressions) != 1 {
		t.Fatalf("node stage selector = %+v, want the kwok annotation added to the expressions", st.Spec.Selector)
	}
	if st.Spec.Delay.Duration != heartbeatMillis || st.Spec.Delay.Jitter != heartbeatJitterMillis {
		t.Fatalf("heartbeat delay = %+v", st.Spec.Delay)
	}
	if st.Spec.Next.StatusTemplate != "conditions: []\n" {
		t.Fatalf("template changed: %q", st.Spec.Next.StatusTemplate)
	}

	pod := []byte("apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata: {name: pod-ready}\nspec:\n  resourceRef: {apiGroup: v1, kind: Pod}\n  selector: {}\n")
	if out, err = labStage(pod); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "matchAnnotations") {
		t.Fatalf("pod stage got the node annotation:\n%s", out)
	}
}

func TestMissingRebuildsOldStages(t *testing.T) {
	t.Setenv(DirEnv, t.TempDir())
	if err := os.WriteFile(stagesPath(), []byte("apiVersion: kwok.x-k8s.io/v1alpha1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(Missing(), partStages) {
		t.Fatal("a stages file from an older recipe is not reported missing")
	}
	if err := os.WriteFile(stagesPath(), []byte(stagesHeader), 0o644); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(Missing(), partStages) {
		t.Fatal("the current stages file is reported missing")
	}
}
