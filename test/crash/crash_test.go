// Package crash runs deploys with their worker process SIGKILLed at every
// activity boundary and in the middle of a watch, and cancels them at every
// point where a person can (see harness/crash.go for the matrix). The
// drills' matrix is in test/crashdrill, so that each package stays well
// inside go test's time limit.
package crash

import (
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/specfile"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

// crashDeploySpec is the shipped canary with short windows, so that the
// matrix fits in CI time, and with the latency bound relaxed (see
// harness.RelaxLatency).
func crashDeploySpec(t *testing.T, env *devenv.Env) deploys.Spec {
	spec := harness.DeploySpec(t, env)
	for i := range spec.Steps {
		spec.Steps[i].Pause = specfile.Duration(3 * time.Second)
	}
	spec.Bake = specfile.Duration(2 * time.Second)
	harness.RelaxLatency(&spec)
	return spec
}

// deployCrash is a good version: every kill point must still promote it,
// shift traffic once per step, and pass no window on unwatched time.
var deployCrash = harness.CrashScenario{
	Name: "deploy",
	Begin: func(t *testing.T, env *devenv.Env) client.WorkflowRun {
		return harness.StartDeploy(t, env, crashDeploySpec(t, env), "v2", "crash-matrix")
	},
	MidPhase: "watching",
	Check: func(t *testing.T, env *devenv.Env, run client.WorkflowRun, _ *harness.Recorder, kill *harness.Kill) string {
		res, runErr := harness.DeployResultOf(t, run, 4*time.Minute)
		st := harness.State(t, env)
		allNew := st.VersionWeights["v2"] == 100 && st.VersionWeights["v1"] == 0 && st.Stable == "v2"
		allStable := st.VersionWeights["v1"] == 100 && st.VersionWeights["v2"] == 0 && st.Stable == "v1"
		switch {
		case res.Outcome == workflows.OutcomePromoted && !allNew:
			t.Errorf("promoted, but weights %v stable %s", st.VersionWeights, st.Stable)
		case res.Outcome != workflows.OutcomePromoted && !allStable:
			t.Errorf("outcome %s (%s, %v), but weights %v stable %s: neither all-new nor all-stable", res.Outcome, res.Reason, runErr, st.VersionWeights, st.Stable)
		}
		if res.Outcome != workflows.OutcomePromoted {
			t.Errorf("outcome %s (%s), want promoted: the version is good, a crash must not change that", res.Outcome, res.Reason)
		}
		if res.Outcome == workflows.OutcomePromoted && (harness.Contains(st.Running, "v1") || !harness.Contains(st.Running, "v2")) {
			t.Errorf("running %v after promotion, want only v2", st.Running)
		}
		if len(st.Faults) != 0 {
			t.Errorf("active faults %+v", st.Faults)
		}
		steps := harness.Steps(t, res.Steps)
		for _, b := range harness.BlindPasses(crashDeploySpec(t, env), steps) {
			t.Errorf("blind pass: %s", b)
		}
		if kill != nil && kill.Hit("Watch") && harness.Unobserved(steps) <= 0 {
			t.Errorf("the kill hit a watch, yet no step records unobserved time: %+v", steps)
		}
		// Three shifts: 10%, 50%, 100%. A SetWeights attempt killed after
		// its change reports changed=false on the retry, so fewer is fine;
		// more would be a shift made twice.
		calls, changed := harness.WeightChanges(t, env.Client, run.GetID())
		if calls != 3 || changed > 3 || changed < 2 {
			t.Errorf("SetWeights in history: %d completed, %d changed; want 3 completed, 3 changed (2 when a kill hit one after its change)", calls, changed)
		}
		return res.Outcome
	},
}

func TestCrashMatrixDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("crash matrix: minutes of real runs")
	}
	harness.CrashMatrix(t, deployCrash)
}
