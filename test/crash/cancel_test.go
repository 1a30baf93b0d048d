package crash

import (
	"context"
	"errors"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/specfile"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

// cancelPoint is a moment at which a deploy is cancelled from the Temporal
// API, as the UI's Cancel button and `temporal workflow cancel` do, or
// aborted with `deploy abort` (the same thing to the workflow).
type cancelPoint struct {
	name string
	// setup adjusts the spec; reach brings the deploy to the moment, or
	// says why it could not ("": reached).
	setup func(spec *deploys.Spec, env *devenv.Env, t *testing.T)
	reach func(t *testing.T, env *devenv.Env, id string) string
	abort bool // deploy abort instead of a cancellation
}

func phase(p string) func(*testing.T, *devenv.Env, string) string {
	return func(t *testing.T, env *devenv.Env, id string) string {
		if why := harness.AwaitPhase(env.Client, id, p, time.Minute); why != "" {
			return why
		}
		time.Sleep(300 * time.Millisecond)
		return ""
	}
}

func paused(t *testing.T, env *devenv.Env, id string) string {
	if why := harness.AwaitPhase(env.Client, id, "watching", time.Minute); why != "" {
		return why
	}
	harness.Update(t, env.Client, id, workflows.UpdatePause, "cancel-test")
	harness.WaitPhase(t, env.Client, id, "paused")
	time.Sleep(300 * time.Millisecond)
	return ""
}

// tries is how many fresh deploys a point gets to be reached: on a loaded
// 2-core machine a deploy can rightly roll back (latency, too few requests)
// before the moment it is to be cancelled at, which says nothing about that
// moment.
const tries = 3

var cancelPoints = []cancelPoint{
	// The canary is being started (the phase is too short to catch by
	// polling): cancelled right after the start.
	{name: "just-started", reach: func(*testing.T, *devenv.Env, string) string { return "" }},
	{name: "watching-10", reach: phase("watching")},
	{name: "watching-50", reach: func(t *testing.T, env *devenv.Env, id string) string {
		deadline := time.Now().Add(time.Minute)
		for harness.State(t, env).VersionWeights["v2"] != 50 {
			if s, err := harness.Status(context.Background(), env.Client, id); err == nil && s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				return "the run ended first (" + s.String() + ")"
			}
			if time.Now().After(deadline) {
				return "the canary never reached 50%"
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		return ""
	}},
	{name: "paused-10", reach: paused},
	{name: "abort-paused-10", reach: paused, abort: true},
	{name: "awaiting-approval-10", setup: func(spec *deploys.Spec, _ *devenv.Env, _ *testing.T) {
		spec.Steps[1].Approval = true
	}, reach: phase("awaiting-approval")},
	{name: "paused-on-failure-10", setup: func(spec *deploys.Spec, env *devenv.Env, t *testing.T) {
		spec.OnFailure = "pause"
		harness.BadVersion(t, env, "v2", "0.3")
	}, reach: phase("paused-on-failure")},
	// A bake long enough to be seen by polling on a loaded machine (a 4 s
	// bake could pass between two slow queries and promote).
	{name: "baking", setup: func(spec *deploys.Spec, _ *devenv.Env, _ *testing.T) {
		spec.Bake = specfile.Duration(30 * time.Second)
	}, reach: phase("baking")},
}

// TestCancelPoints: for every cancellation point, the deploy ends (no
// hang), traffic ends all on the stable version (or, only for a deploy that
// promoted, all on the new one), the weights sum to 100 throughout and the
// canary is never stopped while it takes traffic (fails on 716d774: a
// cancelled hold spins and never ends; cancellation while waiting for
// approval or paused ends with the canary taking traffic).
func TestCancelPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("cancellation matrix: a minute of real runs")
	}
	for _, cp := range cancelPoints {
		t.Run(cp.name, func(t *testing.T) {
			t.Parallel()
			env := harness.Start(t, false)
			inv := harness.WatchInvariants(t, env)
			spec := harness.DeploySpec(t, env)
			spec.Steps[0].Pause = specfile.Duration(5 * time.Second)
			spec.Bake = specfile.Duration(4 * time.Second)
			harness.RelaxLatency(&spec)
			if cp.setup != nil {
				cp.setup(&spec, env, t)
			}
			var run client.WorkflowRun
			for try := 1; ; try++ {
				run = harness.StartDeploy(t, env, spec, "v2", "cancel-test")
				why := cp.reach(t, env, run.GetID())
				if why == "" {
					break
				}
				if try == tries {
					t.Fatalf("%s: not reached in %d deploys; the last: %s", cp.name, tries, why)
				}
				t.Logf("%s: not reached (%s); another deploy", cp.name, why)
				if res, _ := harness.DeployResultOf(t, run, 2*time.Minute); res.Outcome == workflows.OutcomePromoted {
					t.Fatalf("%s: the deploy promoted before the point was reached: the point is too short to catch", cp.name)
				}
				harness.WaitUntil(t, "traffic back on v1", time.Minute, func() bool { return harness.State(t, env).VersionWeights["v1"] == 100 })
			}
			at := harness.State(t, env).VersionWeights["v2"]
			if cp.abort {
				harness.Update(t, env.Client, run.GetID(), workflows.UpdateAbort, "cancel-test")
			} else if err := env.Client.CancelWorkflow(context.Background(), run.GetID(), ""); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			var res workflows.DeployResult
			err := run.Get(ctx, &res)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Fatalf("cancelled with the canary at %d%%: still running 90s later (hung)", at)
			}
			hasRecord := err == nil || workflows.RecordOf(err, &res)
			st := harness.State(t, env)
			status, _ := harness.Status(context.Background(), env.Client, run.GetID())
			t.Logf("cancelled at %d%%: status %s outcome %q (%s) err %v; weights %v stable %s running %v",
				at, status, res.Outcome, res.Reason, err, st.VersionWeights, st.Stable, st.Running)
			allStable := st.VersionWeights["v1"] == 100 && st.VersionWeights["v2"] == 0 && st.Stable == "v1"
			allNew := st.VersionWeights["v2"] == 100 && st.VersionWeights["v1"] == 0 && st.Stable == "v2"
			switch {
			case res.Outcome == workflows.OutcomePromoted && !allNew:
				t.Errorf("promoted, but the weights are %v (stable %s)", st.VersionWeights, st.Stable)
			case res.Outcome != workflows.OutcomePromoted && !allStable:
				t.Errorf("not promoted (%q), but traffic is not all on the stable version: %v (stable %s)", res.Outcome, st.VersionWeights, st.Stable)
			}
			if res.Outcome != workflows.OutcomePromoted && harness.Contains(st.Running, "v2") && st.VersionWeights["v2"] == 0 {
				t.Logf("the canary is left running at 0%%")
			}
			if !hasRecord {
				t.Errorf("the run ended (%s) without its record: %v", status, err)
			}
			if status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED && res.Outcome != workflows.OutcomePromoted {
				t.Errorf("completed in Temporal with outcome %q: only a promotion may look like success", res.Outcome)
			}
			pending, _ := harness.PendingActivities(context.Background(), env.Client, run.GetID())
			if len(pending) > 0 {
				t.Errorf("activities pending after the end: %v", pending)
			}
			inv.Assert(t)
		})
	}
}
