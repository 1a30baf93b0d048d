package workflows

import (
	"go.temporal.io/sdk/client"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/specfile"
)

// safetySpec: 10% watched for 10s, then 50% after an approval (held at
// 10%, watched), watched 10s, then a 10s bake. With deployDelay 2s and
// windowDelay 10s the timeline (workflow time) is:
//
//	0-2 deploying · 2-12 window at 10% · 12-20 held for approval at 10%
//	(approved at 20) · 20-30 window at 50% · 30-40 bake at 100% · 40 promoted
func safetySpec(onFailure string) deploys.Spec {
	s := testSpec(onFailure,
		deploys.Step{Weight: 10, Pause: specfile.Duration(10 * time.Second)},
		deploys.Step{Weight: 50, Pause: specfile.Duration(10 * time.Second), Approval: true})
	s.Bake = specfile.Duration(10 * time.Second)
	return s
}

// TestDeployEveryExitEndsOnStable is the invariant over every cancellation
// point: a cancellation (the Temporal UI's Cancel, `temporal workflow
// cancel`, a parent going away) or an abort, at any phase, ends with all
// traffic verified on stable, the canary stopped only after that, and the
// workflow failed as Aborted with its record. On the code before
// "deploy-safety", a cancellation while held hung the workflow (TMPRL1101)
// and one while paused ended it with the canary serving.
func TestDeployEveryExitEndsOnStable(t *testing.T) {
	points := []struct {
		name  string
		phase string // the phase the deploy is in when it is stopped
		at    time.Duration
		pause bool // pause at 5s: held at 10% after the first window
		fail  bool // the first window fails (onFailure: pause): held for a decision
	}{
		{name: "deploying", phase: "deploying", at: time.Second},
		{name: "first window", phase: "watching", at: 5 * time.Second},
		{name: "held for approval at 10%", phase: "awaiting-approval", at: 15 * time.Second},
		{name: "second window", phase: "watching", at: 25 * time.Second},
		{name: "bake at 100%", phase: "baking", at: 35 * time.Second},
		{name: "paused at 10%", phase: "paused", at: 15 * time.Second, pause: true},
		{name: "paused after a failed judgement", phase: "paused-on-failure", at: 15 * time.Second, fail: true},
	}
	for _, p := range points {
		for _, how := range []string{"cancel", "abort"} {
			t.Run(p.name+"/"+how, func(t *testing.T) {
				env, w := newEnv(t), newWorld()
				w.deployDelay, w.windowDelay = 2*time.Second, 10*time.Second
				onFailure := "rollback"
				if p.fail {
					onFailure = "pause"
					w.watches = append(w.watches, failAt(2_000_000, "errors high"))
				}
				w.mockDeploy(env)
				var rejected error
				if p.pause {
					env.RegisterDelayedCallback(func() { update(env, UpdatePause, Command{Who: "pat"}, &rejected) }, 5*time.Second)
				}
				env.RegisterDelayedCallback(func() { update(env, UpdateApprove, Command{Who: "ann"}, new(error)) }, 20*time.Second)
				env.RegisterDelayedCallback(func() {
					v, err := env.QueryWorkflow(QueryState)
					var st DeployState
					if err != nil || v.Get(&st) != nil || st.Phase != p.phase {
						t.Errorf("at %s the deploy is in phase %q (%v), want %q", p.at, st.Phase, err, p.phase)
					}
					if how == "cancel" {
						env.CancelWorkflow()
						return
					}
					update(env, UpdateAbort, Command{Who: "bob", Reason: "stop it"}, &rejected)
				}, p.at)
				res := runDeploy(t, env, safetySpec(onFailure))
				if rejected != nil {
					t.Fatal(rejected)
				}
				if res.Outcome != OutcomeAborted {
					t.Fatalf("outcome %s (%s), want aborted", res.Outcome, res.Reason)
				}
				wantWeights(t, w, 100, 0)
				if w.stable != "v1" || w.called("promote") != 0 {
					t.Fatalf("stable %s after an abort", w.stable)
				}
				if w.called("stop:v2") != 1 || w.stoppedServing != 0 {
					t.Fatalf("canary stopped %d times, %d of them while serving: want once, after traffic left it", w.called("stop:v2"), w.stoppedServing)
				}
				if w.called("release") != 1 {
					t.Fatalf("lease released %d times, want 1", w.called("release"))
				}
			})
		}
	}
}

// TestDeployFailedRollbackLeavesCanaryRunning: when traffic cannot be put
// back on stable (AccessDenied on the weights call), the canary keeps
// running (stopping it would drop the traffic it takes) and the outcome
// says what a person must do. Before "deploy-safety" the canary was
// stopped while serving and the deploy reported rolled_back.
func TestDeployFailedRollbackLeavesCanaryRunning(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.failStableAt = 1
	w.watches = append(w.watches, failAt(2_000_000, "errors: error_rate 0.3 above max 0.05"))
	w.mockDeploy(env)
	res := runDeploy(t, env, testSpec("rollback"))
	if res.Outcome != OutcomeRollbackFailed {
		t.Fatalf("outcome %s (%s), want rollback_failed", res.Outcome, res.Reason)
	}
	for _, want := range []string{"error_rate 0.3", "AccessDenied", "shift all traffic to v1", "then stop v2"} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("reason %q does not say %q", res.Reason, want)
		}
	}
	if w.called("stop:v2") != 0 || w.stoppedServing != 0 {
		t.Fatal("the canary was stopped while it still took traffic")
	}
	if len(res.Findings) == 0 {
		t.Fatal("no finding for a failed rollback")
	}
}

// TestDeployRefusedWhenLeaseHeld: a second deploy of a service changes
// nothing and names the holder.
func TestDeployRefusedWhenLeaseHeld(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.leaseHeldBy = "deploy/web/v3"
	w.mockDeploy(env)
	res := runDeploy(t, env, testSpec("rollback"))
	if res.Outcome != OutcomeRefused || !strings.Contains(res.Reason, "deploy/web/v3") {
		t.Fatalf("outcome %s (%s), want refused naming deploy/web/v3", res.Outcome, res.Reason)
	}
	if w.called("deploy") != 0 || w.called("weights") != 0 || w.called("release") != 0 {
		t.Fatal("a refused deploy changed something")
	}
}

// TestDeployPreflight: a binding preflight failure (a role missing a verb,
// no PodDisruptionBudget under "refuse") refuses the deploy before the
// canary exists and names the check; a warning is a finding and the deploy
// goes on. Both are in the record.
func TestDeployPreflight(t *testing.T) {
	for _, tc := range []struct {
		name    string
		finding activities.Finding
		want    string
	}{
		{"refused", activities.Finding{Check: "rbac", Detail: "release kubernetes: the worker may not patch deployments in web", Refuse: true}, OutcomeRefused},
		{"warned", activities.Finding{Check: "pdb", Detail: "release kubernetes: Deployment web has no PodDisruptionBudget"}, OutcomePromoted},
		{"passed", activities.Finding{Check: "pdb", OK: true, Detail: "release kubernetes: PodDisruptionBudget web covers Deployment web"}, OutcomePromoted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, w := newEnv(t), newWorld()
			w.preflight = []activities.Finding{tc.finding}
			w.mockDeploy(env)
			res := runDeploy(t, env, testSpec("rollback"))
			if res.Outcome != tc.want {
				t.Fatalf("outcome %s (%s), want %s", res.Outcome, res.Reason, tc.want)
			}
			if w.called("preflight") != 1 || len(res.Preflight) != 1 {
				t.Fatalf("preflight called %d times, recorded %v", w.called("preflight"), res.Preflight)
			}
			switch tc.name {
			case "refused":
				if !strings.Contains(res.Reason, "may not patch deployments") || w.called("deploy") != 0 || w.called("weights") != 0 {
					t.Fatalf("reason %q; deploy %d weights %d: a refused deploy changed something", res.Reason, w.called("deploy"), w.called("weights"))
				}
			case "warned":
				if !slices.ContainsFunc(res.Findings, func(f string) bool { return strings.Contains(f, "no PodDisruptionBudget") }) {
					t.Fatalf("findings %v: the warning is missing", res.Findings)
				}
			case "passed":
				if len(res.Findings) != 0 {
					t.Fatalf("findings %v for a passed check", res.Findings)
				}
			}
		})
	}
}

// TestDeployCanarySizedBeforeShift: the canary's capacity is raised before
// each larger share reaches it (never after, never for a smaller share), and
// a canary that cannot be sized is rolled back without getting the share.
func TestDeployCanarySizedBeforeShift(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.mockDeploy(env)
	res := runDeploy(t, env, testSpec("rollback"))
	if res.Outcome != OutcomePromoted || w.called("scale") != 0 {
		t.Fatalf("outcome %s (%s), %d sizings of a canary that does not scale", res.Outcome, res.Reason, w.called("scale"))
	}

	env, w = newEnv(t), newWorld()
	w.canaryScales = true
	w.mockDeploy(env)
	res = runDeploy(t, env, testSpec("rollback"))
	if res.Outcome != OutcomePromoted {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Reason)
	}
	want := []string{"scale 10", "weights 10", "scale 50", "weights 50", "scale 100", "weights 100"}
	if len(w.shifts) < len(want) || !slices.Equal(w.shifts[:len(want)], want) {
		t.Fatalf("shifts %v, want %v first", w.shifts, want)
	}

	env, w = newEnv(t), newWorld()
	w.canaryScales, w.scaleFailAt = true, 50
	w.mockDeploy(env)
	res = runDeploy(t, env, testSpec("rollback"))
	if res.Outcome != OutcomeRolledBack || !strings.Contains(res.Reason, "exceeded quota") {
		t.Fatalf("outcome %s (%s), want rolled back naming the quota", res.Outcome, res.Reason)
	}
	if slices.Contains(w.shifts, "weights 50") || w.weights["v2"] != 0 {
		t.Fatalf("shifts %v, weights %v: the unsized canary got its share, or kept traffic", w.shifts, w.weights)
	}
}

// TestDeployHeldSamplesAreRecorded: while paused the canary is watched and
// what the watch saw is in the step records; a failure while held rolls
// back. Before "deploy-safety" a rollback during a pause left step 1 as
// "pass, failed 0".
func TestDeployHeldSamplesAreRecorded(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.windowDelay = 10 * time.Second
	w.mockDeploy(env)
	var rejected error
	env.RegisterDelayedCallback(func() { update(env, UpdatePause, Command{Who: "pat"}, &rejected) }, 5*time.Second)
	// The held watch (an hour each in the world) ends; the rollback comes
	// from a person after two of them.
	env.RegisterDelayedCallback(func() { update(env, UpdateRollback, Command{Who: "ron"}, &rejected) }, 150*time.Minute)
	res := runDeploy(t, env, testSpec("rollback"))
	if rejected != nil {
		t.Fatal(rejected)
	}
	if res.Outcome != OutcomeRolledBack {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Reason)
	}
	held := 0
	for _, s := range res.Steps {
		if s.Kind == WatchHeld {
			held++
			if s.Weight != 10 || s.Step != 1 {
				t.Errorf("held record %+v, want step 1 at 10%%", s)
			}
		}
	}
	if held < 2 {
		t.Fatalf("%d held records in %+v, want the hold's watches recorded", held, res.Steps)
	}
	wantWeights(t, w, 100, 0)
}

// TestDeployBakeFailureRollsBack: a canary that fails during the bake at
// 100% is not promoted.
func TestDeployBakeFailureRollsBack(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.watches = append(w.watches, pass, pass, failAt(3_000_000, "errors: error_rate 0.3 above max 0.05"))
	w.mockDeploy(env)
	res := runDeploy(t, env, testSpec("rollback"))
	if res.Outcome != OutcomeRolledBack || !strings.HasPrefix(res.Reason, "bake: ") {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Reason)
	}
	wantWeights(t, w, 100, 0)
	if w.stable != "v1" || w.called("promote") != 0 || w.stoppedServing != 0 {
		t.Fatalf("stable %s promote %d stoppedServing %d", w.stable, w.called("promote"), w.stoppedServing)
	}
}

// TestDeployInsufficientEvidenceIsNotAPass: a window the watch could not
// see (it says insufficient) rolls back; its record says so.
func TestDeployInsufficientEvidenceIsNotAPass(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.watches = append(w.watches, func(in activities.WatchInput) (activities.WatchResult, error) {
		return activities.WatchResult{Failed: true, Insufficient: true, Reason: "insufficient evidence: 0 conclusive samples of 5 needed",
			UnobservedMs: 9000, Gaps: []activities.Gap{{From: 1, To: 9001, Attempt: 2}}, Attempts: 2}, nil
	})
	w.mockDeploy(env)
	res := runDeploy(t, env, testSpec("rollback"))
	if res.Outcome != OutcomeRolledBack || !strings.Contains(res.Reason, "insufficient evidence") {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Reason)
	}
	s := res.Steps[0]
	if s.Verdict != VerdictInsufficient || s.UnobservedMs != 9000 || len(s.Gaps) != 1 || s.Attempts != 2 {
		t.Fatalf("step record %+v: want insufficient with the unobserved time shown", s)
	}
	wantWeights(t, w, 100, 0)
}

// TestDeployRefusesAnotherService: a spec naming a service the release
// target does not serve changes nothing (found by a newcomer: `service:
// shop` promoted a version onto the local environment's `web`).
func TestDeployRefusesAnotherService(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.service = "shop"
	w.mockDeploy(env)
	res := runDeploy(t, env, testSpec("rollback"))
	if res.Outcome != OutcomeRefused || !strings.Contains(res.Reason, `serves "shop", not "web"`) {
		t.Fatalf("outcome %s (%s), want refused", res.Outcome, res.Reason)
	}
	if w.called("deploy") != 0 || w.called("weights") != 0 {
		t.Fatal("a refused deploy changed something")
	}
}

// TestDeployAbortsBeforeItsTimeout: a deploy started with an execution
// timeout, held for an approval that never comes, aborts itself before the
// server would end it, and its rollback runs: traffic on stable.
func TestDeployAbortsBeforeItsTimeout(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.mockDeploy(env)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{WorkflowExecutionTimeout: 10 * time.Minute})
	res := runDeploy(t, env, safetySpec("rollback"))
	if res.Outcome != OutcomeAborted || !strings.Contains(res.Reason, "timeout") {
		t.Fatalf("outcome %s (%s), want aborted before the timeout", res.Outcome, res.Reason)
	}
	wantWeights(t, w, 100, 0)
	if w.called("stop:v2") != 1 || w.stoppedServing != 0 {
		t.Fatalf("canary stopped %d times, %d while serving", w.called("stop:v2"), w.stoppedServing)
	}
}
