package kube

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
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
