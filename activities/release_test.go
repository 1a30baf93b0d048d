package activities

import (
	"context"
	"testing"

	"go.temporal.io/sdk/testsuite"
)

// countingRelease counts calls; settles says whether it is Settling.
type countingRelease struct {
	state ReleaseState
	calls map[string]int
}

func (r *countingRelease) State(context.Context) (ReleaseState, error) { return r.state, nil }
func (r *countingRelease) Deploy(context.Context, string) error        { r.calls["deploy"]++; return nil }
func (r *countingRelease) Promote(context.Context, string) error       { r.calls["promote"]++; return nil }
func (r *countingRelease) Stop(context.Context, string) error          { r.calls["stop"]++; return nil }
func (r *countingRelease) Prune(context.Context, string, int) ([]string, error) {
	return nil, nil
}

type settlingRelease struct{ countingRelease }

func (*settlingRelease) Settles() bool { return true }

// TestSettlingReleaseIsCalledAgain: a release whose state names a version
// before it is ready (a Kubernetes rollout) is called again when the state
// already shows the version, so a retry still waits; one that does not
// settle is trusted. Stop of a version that is not "running" (a canary
// scaled to 0 by someone) still reaches a settling release.
func TestSettlingReleaseIsCalledAgain(t *testing.T) {
	state := ReleaseState{Stable: "v2", Running: []string{"v1", "v2"}}
	for _, tc := range []struct {
		name    string
		settles bool
		op      string
		version string
		want    int
	}{
		{"deploy of a running version, plain", false, "deploy", "v2", 0},
		{"deploy of a running version, settling", true, "deploy", "v2", 1},
		{"promote of the stable version, plain", false, "promote", "v2", 0},
		{"promote of the stable version, settling", true, "promote", "v2", 1},
		{"stop of a version not running, plain", false, "stop", "v3", 0},
		{"stop of a version not running, settling", true, "stop", "v3", 1},
		{"stop of a running version, plain", false, "stop", "v2", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := countingRelease{state: state, calls: map[string]int{}}
			var r Release = &c
			if tc.settles {
				s := &settlingRelease{c}
				r, c.calls = s, s.calls
			}
			reg := NewRegistry(Provider{Name: "fake", Release: func(map[string]any) (Release, error) { return r, nil }})
			a := New(reg, nil)
			var suite testsuite.WorkflowTestSuite
			env := suite.NewTestActivityEnvironment()
			env.RegisterActivity(a)
			in := VersionInput{Target: Target{Provider: "fake"}, Version: tc.version}
			fn := map[string]any{"deploy": a.DeployVersion, "promote": a.PromoteVersion, "stop": a.StopVersion}[tc.op]
			if _, err := env.ExecuteActivity(fn, in); err != nil {
				t.Fatal(err)
			}
			if got := c.calls[tc.op]; got != tc.want {
				t.Fatalf("%s called %d times, want %d", tc.op, got, tc.want)
			}
		})
	}
}
