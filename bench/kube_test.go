package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/lab/argo"
	"github.com/drillship/drillship/lab/kube"
)

// TestKubernetesSectionSkipsWithoutCluster: with no cluster binaries the
// section is reported skipped, in one line naming the build command, and
// the rest of the report is unaffected.
func TestKubernetesSectionSkipsWithoutCluster(t *testing.T) {
	t.Setenv("DRILLSHIP_KUBE_DIR", t.TempDir())
	rep, err := Run(context.Background(), Options{Quick: true, Only: []string{SecKubernetes}})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Section(SecKubernetes)
	if s == nil {
		t.Fatal("no kubernetes section")
	}
	if s.Status != StatusSkipped || !strings.Contains(s.Method, "go run . lab build") || strings.Contains(s.Method, "\n") {
		t.Fatalf("section %s: %q; want skipped in one line naming `go run . lab build`", s.Status, s.Method)
	}
	dir := t.TempDir()
	if err := rep.Write(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(data, CheckOptions{AllowSkipped: true}); err != nil {
		t.Fatal(err)
	}
}

// TestKubernetesSection runs the quick comparison on the lab's cluster:
// drillship rolls a bad version back and promotes a good one, and so does
// Argo Rollouts when its controller is built (without it, one note says
// why). The section checks the outcomes itself (rolled_back, the
// Deployment's version, the data plane's weights); here the figures must
// be there and make sense.
func TestKubernetesSection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the lab's cluster and the embedded Temporal server")
	}
	kube.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var progress strings.Builder
	rep, err := Run(ctx, Options{Quick: true, Only: []string{SecKubernetes}, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Section(SecKubernetes)
	if s == nil || s.Status != StatusOK {
		t.Fatalf("kubernetes section: %+v\nprogress:\n%s", s, progress.String())
	}
	tools := []string{"drillship"}
	if len(argo.Missing()) == 0 {
		tools = append(tools, "argo-rollouts")
	} else if len(s.Notes) == 0 || !strings.Contains(strings.Join(s.Notes, " "), "Argo Rollouts not measured") {
		t.Fatalf("Argo is not built but no note says why: %v", s.Notes)
	}
	for _, tool := range tools {
		for _, name := range []string{
			": failing sample to all traffic on stable, median",
			": start to all traffic on the new version, median",
			": API writes per bad-version run, median",
			": API writes per promotion, median",
		} {
			f := s.Figure(tool + name)
			if f == nil || f.Value <= 0 {
				t.Errorf("figure %q: %+v; want a positive value", tool+name, f)
			}
		}
		// A rollback is a traffic shift, well under the promotion's steps.
		back, promote := s.Figure(tool+": failing sample to all traffic on stable, median"), s.Figure(tool+": start to all traffic on the new version, median")
		if back != nil && promote != nil && back.Value >= promote.Value {
			t.Errorf("%s: back on stable in %vms, not under the promotion's %vms", tool, back.Value, promote.Value)
		}
	}
	t.Logf("progress:\n%s", progress.String())
	dir := t.TempDir()
	if err := rep.Write(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(data, CheckOptions{AllowSkipped: true}); err != nil {
		t.Fatal(err)
	}
}
