package kube

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// RequiredEnv, set to 1, makes tests fail instead of skip when the cluster's
// binaries are missing (the same variable as package lab's).
const RequiredEnv = "DRILLSHIP_LAB_REQUIRED"

// Require skips t when the binaries or CRDs are not in Dir(), or fails it
// with DRILLSHIP_LAB_REQUIRED=1.
func Require(t testing.TB) {
	t.Helper()
	m := Missing()
	if len(m) == 0 {
		return
	}
	if os.Getenv(RequiredEnv) == "1" {
		t.Fatalf("lab cluster required (%s=1) but missing in %s: %s; build them with `go run . lab build`", RequiredEnv, Dir(), strings.Join(m, ", "))
	}
	t.Skipf("lab cluster not built (missing in %s: %s); to run this test: `go run . lab build` (and set %s=1 to make this a failure)", Dir(), strings.Join(m, ", "), RequiredEnv)
}

// StartTest is Require plus Start for a test: the cluster lives in a short
// temporary directory, dies with the test binary, and is stopped when t
// ends, pass or fail.
func StartTest(t testing.TB) *Cluster {
	t.Helper()
	Require(t)
	dir, err := os.MkdirTemp("", "dskube-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Dir: dir, DieWithParent: true})
	if err != nil {
		t.Fatalf("kube start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("kube stop: %v", err)
		}
	})
	return c
}
