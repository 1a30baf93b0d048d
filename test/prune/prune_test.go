// Package prune runs issue 10 item 6 through the deploy workflow on the
// embedded server and the local environment: pruning after every deploy,
// promoted or rolled back, keeps the rollback target.
package prune

import (
	"os"
	"slices"
	"testing"

	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// v1 stable at start; v2..v5 promoted; v6 and v7 (30% errors) rolled back;
// v8 promoted. keep 3.
func TestPruningKeepsRollbackTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("seven deploys on the embedded server")
	}
	env := harness.Start(t, false)
	spec := harness.DeploySpec(t, env)
	harness.RelaxLatency(&spec)
	spec.Steps = spec.Steps[len(spec.Steps)-1:] // one step is enough here
	if spec.Artifacts.Keep != 3 {
		t.Fatalf("web-canary keeps %d artifacts, this test assumes 3", spec.Artifacts.Keep)
	}
	for _, tc := range []struct {
		version, outcome string
		pruned           []string
	}{
		{"v2", workflows.OutcomePromoted, nil},
		{"v3", workflows.OutcomePromoted, nil},
		{"v4", workflows.OutcomePromoted, []string{"v1"}},
		{"v5", workflows.OutcomePromoted, []string{"v2"}},
		// After a rollback, the failed canary goes; v5 and its own
		// rollback target v4 stay.
		{"v6", workflows.OutcomeRolledBack, []string{"v6"}},
		{"v7", workflows.OutcomeRolledBack, []string{"v7"}},
		// v8 replaced v5: v5 is the rollback target and stays, v4 fills
		// the third place, v3 goes.
		{"v8", workflows.OutcomePromoted, []string{"v3"}},
	} {
		if tc.outcome == workflows.OutcomeRolledBack {
			harness.BadVersion(t, env, tc.version, "0.3")
		}
		res := harness.RunDeploy(t, env, spec, tc.version)
		if res.Outcome != tc.outcome {
			t.Fatalf("%s: outcome %s (%s), want %s", tc.version, res.Outcome, res.Reason, tc.outcome)
		}
		if !slices.Equal(res.Pruned, tc.pruned) {
			t.Fatalf("%s (%s): pruned %v, want %v", tc.version, res.Outcome, res.Pruned, tc.pruned)
		}
	}
	st := harness.State(t, env)
	if st.Stable != "v8" || !slices.Equal(st.Artifacts, []string{"v4", "v5", "v8"}) {
		t.Fatalf("stable %s artifacts %v, want v8 with v4 v5 v8", st.Stable, st.Artifacts)
	}
}
