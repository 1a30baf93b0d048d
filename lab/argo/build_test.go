package argo

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBuild builds the controller when asked (DRILLSHIP_ARGO_BUILD=1): a cold
// build takes many minutes, so ordinary test runs leave it alone.
func TestBuild(t *testing.T) {
	if os.Getenv("DRILLSHIP_ARGO_BUILD") != "1" {
		t.Skip("set DRILLSHIP_ARGO_BUILD=1 to build Argo Rollouts " + Version)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	if err := Build(ctx, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if m := Missing(); len(m) > 0 {
		t.Fatalf("still missing after Build: %v", m)
	}
}

func TestLowerGoLine(t *testing.T) {
	mod := "module x\n\ngo 1.26.10\n\nrequire y v1\n"
	got, was, err := lowerGoLine(mod, "1.26.8")
	if err != nil || was != "1.26.10" || !strings.Contains(got, "\ngo 1.26.8\n") {
		t.Fatalf("patch-level lowering: %q %q %v", got, was, err)
	}
	if _, _, err := lowerGoLine(mod, "1.25.3"); err == nil {
		t.Fatal("a later minor release must be refused")
	}
	got, was, err = lowerGoLine(mod, "1.26.10")
	if err != nil || was != "" || got != mod {
		t.Fatalf("same version must be unchanged: %q %q %v", got, was, err)
	}
}

func TestWrapperMirrorsReplaces(t *testing.T) {
	src := "module m\n\nreplace (\n\tk8s.io/api => k8s.io/api v0.34.5 // pinned\n\ta/b => c/d v1.0.0\n)\n\nreplace e/f => e/g v2.0.0\n"
	w := wrapperGoMod(src, "1.26.8")
	for _, want := range []string{
		"require github.com/argoproj/argo-rollouts " + Version,
		"github.com/argoproj/argo-rollouts => ../src",
		"k8s.io/api => k8s.io/api v0.34.5\n",
		"a/b => c/d v1.0.0",
		"e/f => e/g v2.0.0",
		"go 1.26.8",
	} {
		if !strings.Contains(w, want) {
			t.Errorf("wrapper go.mod lacks %q:\n%s", want, w)
		}
	}
}
