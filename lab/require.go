package lab

import (
	"context"
	"os"
	"testing"
	"time"
)

// RequiredEnv, set to 1, makes lab tests fail instead of skip when a server
// binary is missing (CI sets it where the packages are installed).
const RequiredEnv = "DRILLSHIP_LAB_REQUIRED"

// Require skips t unless the binaries for parts (none: all) are installed; with
// DRILLSHIP_LAB_REQUIRED=1 a missing binary fails t instead.
func Require(t testing.TB, parts ...Part) {
	t.Helper()
	var want Part
	for _, p := range parts {
		want |= p
	}
	if want == 0 {
		want = PartAll
	}
	err := checkBinaries(want)
	if err == nil {
		return
	}
	if os.Getenv(RequiredEnv) == "1" {
		t.Fatalf("lab servers required (%s=1) but missing: %v", RequiredEnv, err)
	}
	how := "apt-get install haproxy postgresql prometheus (and nodejs npm for the Unleash of PartFlags)"
	if want&PartKubernetes != 0 {
		how += ", and `go run . lab build` for the Kubernetes binaries"
	}
	t.Skipf("lab servers not installed (%v); to run this test: %s (and set %s=1 to make this a failure)", err, how, RequiredEnv)
}

// Start is Require plus Up for a test: the lab lives in a temporary
// directory and is stopped when t ends, pass or fail; its servers die with
// the test binary even if it is killed.
func Start(t testing.TB, o Options) *Lab {
	t.Helper()
	Require(t, o.Parts)
	if o.Dir == "" {
		// t.TempDir paths can outgrow a unix socket path; use a short one.
		dir, err := os.MkdirTemp("", "dslab-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		o.Dir = dir
	}
	o.DieWithParent = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := Up(ctx, o)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}
