package workflows

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/analysis"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/specfile"
)

func testSpec(onFailure string, steps ...deploys.Step) deploys.Spec {
	max := 0.05
	ratio := 2.0
	if len(steps) == 0 {
		steps = []deploys.Step{{Weight: 10, Pause: specfile.Duration(10 * time.Second)}, {Weight: 50, Pause: specfile.Duration(10 * time.Second)}}
	}
	s := deploys.Spec{
		Service: "web", Environment: "test",
		Traffic: activities.Target{Provider: "local"}, Release: activities.Target{Provider: "local"},
		Analysis: deploys.Analysis{Target: activities.Target{Provider: "local"}, Interval: specfile.Duration(time.Second),
			Metrics: []analysis.Metric{{Name: "errors", Metric: "error_rate", Max: &max, MaxVsBaseline: &ratio}}},
		Steps: steps, OnFailure: onFailure, Bake: specfile.Duration(5 * time.Second),
	}
	if err := s.Validate(nil); err != nil {
		panic(err)
	}
	return s
}

// runDeploy runs a deploy of v2 and returns its record: the result of a
// promotion, or the record carried by the typed error of any other ending
// (checked against the outcome).
func runDeploy(t *testing.T, env *testsuite.TestWorkflowEnvironment, spec deploys.Spec) DeployResult {
	t.Helper()
	env.ExecuteWorkflow(Deploy, DeployInput{Spec: spec, Version: "v2"})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var res DeployResult
	if err := env.GetWorkflowError(); err != nil {
		if !RecordOf(err, &res) {
			t.Fatalf("workflow error without a record: %v", err)
		}
		want := map[string]string{OutcomeRolledBack: ErrRolledBack, OutcomeAborted: ErrAborted,
			OutcomeRollbackFailed: ErrRollbackFailed, OutcomeRefused: ErrRefused}[res.Outcome]
		if got := EndingOf(err); got != want || want == "" {
			t.Fatalf("outcome %s ended the workflow with error type %q, want %q", res.Outcome, got, want)
		}
		return res
	}
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Outcome != OutcomePromoted {
		t.Fatalf("the workflow completed with outcome %s: only a promotion completes", res.Outcome)
	}
	return res
}

var updateSeq int

func update(env *testsuite.TestWorkflowEnvironment, name string, cmd Command, rejected *error) {
	updateSeq++
	env.UpdateWorkflow(name, fmt.Sprintf("%s-%d", name, updateSeq), &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { *rejected = err },
		OnComplete: func(any, error) {},
	}, cmd)
}

func wantWeights(t *testing.T, w *world, v1, v2 int) {
	t.Helper()
	got := w.weightsNow()
	if got["v1"] != v1 || got["v2"] != v2 {
		t.Fatalf("final weights %s, want v1=%d v2=%d", activities.FormatWeights(got), v1, v2)
	}
}

func TestDeployPromotes(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.mockDeploy(env)
	res := runDeploy(t, env, testSpec("rollback"))
	if res.Outcome != OutcomePromoted {
		t.Fatalf("outcome %s (%s), want promoted", res.Outcome, res.Reason)
	}
	wantWeights(t, w, 0, 100)
	if w.stable != "v2" || w.called("stop:v1") != 1 || w.called("prune") != 1 {
		t.Fatalf("stable %s, stop v1 %d, prune %d: want v2 promoted, v1 stopped, artifacts pruned", w.stable, w.called("stop:v1"), w.called("prune"))
	}
	if len(res.Steps) != 3 || res.Steps[0].Verdict != analysis.Pass || res.Steps[2].Weight != 100 {
		t.Fatalf("steps %+v: want two canary steps and the bake, all passed", res.Steps)
	}
	if res.Previous != "v1" || res.TimeToRollbackMs != nil {
		t.Fatalf("previous %q, ttr %v", res.Previous, res.TimeToRollbackMs)
	}
}

func TestDeployRollsBackOnAbsoluteThreshold(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.watches = append(w.watches, failAt(2_000_000, "errors: error_rate 0.1 above max 0.05"))
	w.mockDeploy(env)
	res := runDeploy(t, env, testSpec("rollback"))
	if res.Outcome != OutcomeRolledBack || !strings.Contains(res.Reason, "above max") {
		t.Fatalf("outcome %s reason %q", res.Outcome, res.Reason)
	}
	wantWeights(t, w, 100, 0)
	if res.TimeToRollbackMs == nil || *res.TimeToRollbackMs != 500 {
		t.Fatalf("time to rollback %v, want 500 (traffic on stable at 2000500, failing sample at 2000000)", res.TimeToRollbackMs)
	}
	if w.called("stop:v2") != 1 || w.stable != "v1" || w.called("promote") != 0 {
		t.Fatal("the canary must be stopped and v1 stay stable")
	}
	if len(res.Steps) != 1 || res.Steps[0].Verdict != analysis.Fail {
		t.Fatalf("steps %+v", res.Steps)
	}
}

func TestDeployRollsBackOnBaselineComparison(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.watches = append(w.watches, pass, failAt(3_000_000, "errors: error_rate 0.03 above 2x baseline 0.01"))
	w.mockDeploy(env)
	res := runDeploy(t, env, testSpec("rollback"))
	if res.Outcome != OutcomeRolledBack || !strings.Contains(res.Reason, "baseline") {
		t.Fatalf("outcome %s reason %q", res.Outcome, res.Reason)
	}
	wantWeights(t, w, 100, 0)
	if len(res.Steps) != 2 || res.Steps[0].Verdict != analysis.Pass || res.Steps[1].Verdict != analysis.Fail {
		t.Fatalf("steps %+v: want step 1 passed, step 2 failed", res.Steps)
	}
}

func TestDeployPausesOnFailureThenResumes(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.watches = append(w.watches, failAt(2_000_000, "errors high"), pass)
	w.mockDeploy(env)
	var rejected error
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryState)
		if err != nil {
			t.Error(err)
			return
		}
		var st DeployState
		_ = v.Get(&st)
		if st.Phase != "paused-on-failure" || st.Weights["v2"] != 10 {
			t.Errorf("while paused: phase %s weights %s, want paused-on-failure at v2=10", st.Phase, activities.FormatWeights(st.Weights))
		}
		update(env, UpdateResume, Command{Who: "alice"}, &rejected)
	}, time.Hour)
	res := runDeploy(t, env, testSpec("pause"))
	if rejected != nil {
		t.Fatal(rejected)
	}
	if res.Outcome != OutcomePromoted {
		t.Fatalf("outcome %s (%s), want promoted after resume", res.Outcome, res.Reason)
	}
	wantWeights(t, w, 0, 100)
	if len(res.Audit) != 1 || res.Audit[0].Action != "resume" || res.Audit[0].Who != "alice" {
		t.Fatalf("audit %+v", res.Audit)
	}
}

func TestDeployAbort(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.mockDeploy(env)
	var rejected error
	spec := testSpec("rollback", deploys.Step{Weight: 10, Pause: specfile.Duration(10 * time.Second)}, deploys.Step{Weight: 50, Approval: true})
	env.RegisterDelayedCallback(func() { update(env, UpdateAbort, Command{Who: "bob", Reason: "wrong build"}, &rejected) }, time.Minute)
	res := runDeploy(t, env, spec)
	if rejected != nil {
		t.Fatal(rejected)
	}
	if res.Outcome != OutcomeAborted || !strings.Contains(res.Reason, "wrong build") {
		t.Fatalf("outcome %s reason %q", res.Outcome, res.Reason)
	}
	wantWeights(t, w, 100, 0)
	if w.called("stop:v2") != 1 {
		t.Fatal("abort must stop the canary")
	}
}

func TestDeployFastTrackRollback(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.mockDeploy(env)
	var rejected error
	spec := testSpec("rollback", deploys.Step{Weight: 10, Pause: specfile.Duration(time.Second)}, deploys.Step{Weight: 50, Approval: true}, deploys.Step{Weight: 80, Pause: specfile.Duration(time.Hour)})
	env.RegisterDelayedCallback(func() { update(env, UpdateRollback, Command{Who: "carol", Reason: "customer reports"}, &rejected) }, time.Minute)
	res := runDeploy(t, env, spec)
	if rejected != nil {
		t.Fatal(rejected)
	}
	if res.Outcome != OutcomeRolledBack || !strings.Contains(res.Reason, "rollback requested by carol") {
		t.Fatalf("outcome %s reason %q", res.Outcome, res.Reason)
	}
	wantWeights(t, w, 100, 0)
	if w.watchN != 1 {
		t.Fatalf("%d timed watches ran; a fast-track rollback skips the remaining analysis", w.watchN)
	}
}

func TestDeployApprovalGate(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.mockDeploy(env)
	var early, rejected error
	spec := testSpec("rollback", deploys.Step{Weight: 10, Pause: specfile.Duration(time.Second)}, deploys.Step{Weight: 60, Pause: specfile.Duration(time.Second), Approval: true})
	// Approving when nothing waits is refused.
	env.RegisterDelayedCallback(func() { update(env, UpdateApprove, Command{Who: "early"}, &early) }, 0)
	env.RegisterDelayedCallback(func() {
		v, _ := env.QueryWorkflow(QueryState)
		var st DeployState
		_ = v.Get(&st)
		if st.Phase != "awaiting-approval" || !strings.Contains(st.Waiting, "60%") || st.Weights["v2"] != 10 {
			t.Errorf("before approval: phase %s waiting %q weights %s", st.Phase, st.Waiting, activities.FormatWeights(st.Weights))
		}
		update(env, UpdateApprove, Command{Who: "dana"}, &rejected)
	}, 2*time.Hour)
	res := runDeploy(t, env, spec)
	if early == nil {
		t.Fatal("an approval with nothing waiting must be refused")
	}
	if rejected != nil {
		t.Fatal(rejected)
	}
	if res.Outcome != OutcomePromoted || res.Audit[0].Action != "approve" || res.Audit[0].Who != "dana" {
		t.Fatalf("outcome %s audit %+v", res.Outcome, res.Audit)
	}
	if res.DurationMs < (2 * time.Hour).Milliseconds() {
		t.Fatalf("duration %dms: the deploy must have waited for the approval", res.DurationMs)
	}
}

func TestDeployProductionWaitsBeforeFull(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.mockDeploy(env)
	var rejected error
	spec := testSpec("rollback")
	spec.Production = true
	env.RegisterDelayedCallback(func() {
		if got := w.weightsNow()["v2"]; got != 50 {
			t.Errorf("production deploy at %d%% before approval, want 50", got)
		}
		update(env, UpdateApprove, Command{Who: "erin"}, &rejected)
	}, time.Hour)
	res := runDeploy(t, env, spec)
	if rejected != nil || res.Outcome != OutcomePromoted {
		t.Fatalf("outcome %s rejected %v", res.Outcome, rejected)
	}
	wantWeights(t, w, 0, 100)
}

func TestDeployBreakGlass(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.mockDeploy(env)
	var noReason, rejected error
	spec := testSpec("rollback", deploys.Step{Weight: 10, Pause: specfile.Duration(time.Second)}, deploys.Step{Weight: 50, Approval: true})
	env.RegisterDelayedCallback(func() { update(env, UpdateBreakGlass, Command{Who: "frank"}, &noReason) }, 0)
	env.RegisterDelayedCallback(func() {
		if got := w.weightsNow()["v2"]; got != 10 {
			t.Errorf("break-glass without a reason changed the weights: v2=%d", got)
		}
		update(env, UpdateBreakGlass, Command{Who: "frank", Reason: "sev1 fix, canary cannot wait"}, &rejected)
	}, 2*time.Minute)
	res := runDeploy(t, env, spec)
	if noReason == nil || !strings.Contains(noReason.Error(), "reason") {
		t.Fatalf("break-glass without a reason: %v, want refused naming the reason", noReason)
	}
	if rejected != nil {
		t.Fatal(rejected)
	}
	if res.Outcome != OutcomePromoted || !strings.Contains(res.Reason, "sev1 fix") {
		t.Fatalf("outcome %s reason %q", res.Outcome, res.Reason)
	}
	wantWeights(t, w, 0, 100)
	if len(res.Audit) != 1 || res.Audit[0].Action != "break-glass" || res.Audit[0].Reason == "" || res.Audit[0].At == 0 {
		t.Fatalf("audit %+v: want one break-glass record with who, when, why", res.Audit)
	}
}

func TestDeployRefusesStableVersion(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.mockDeploy(env)
	env.ExecuteWorkflow(Deploy, DeployInput{Spec: testSpec("rollback"), Version: "v1"})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "already the stable version") || EndingOf(err) != ErrRefused {
		t.Fatalf("err %v, want refused", err)
	}
	if w.called("weights") != 0 || w.called("deploy") != 0 {
		t.Fatal("nothing may change")
	}
}

func TestDeployAbortWhileDeployingShiftsNothing(t *testing.T) {
	env, w := newEnv(t), newWorld()
	var a *activities.Activities
	var rejected error
	// The abort arrives while the canary's instances are starting (the
	// first matching mock wins, so this one goes before the world's).
	env.OnActivity(a.DeployVersion, mock.Anything, mock.Anything).After(time.Minute).Return(int64(1), nil)
	w.mockDeploy(env)
	env.RegisterDelayedCallback(func() { update(env, UpdateAbort, Command{Who: "gail", Reason: "wrong artifact"}, &rejected) }, 30*time.Second)
	res := runDeploy(t, env, testSpec("rollback"))
	if rejected != nil || res.Outcome != OutcomeAborted {
		t.Fatalf("outcome %s rejected %v", res.Outcome, rejected)
	}
	if got := w.weightsNow(); got["v2"] != 0 || got["v1"] != 100 {
		t.Fatalf("weights %s: an abort before the first step must never shift traffic", activities.FormatWeights(got))
	}
	if w.called("weights") > 1 {
		t.Fatalf("%d weight changes; only the rollback's (a no-op) may run", w.called("weights"))
	}
}

func TestDeployRoleKeyedTraffic(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.weights = activities.Weights{"stable": 100, "canary": 0}
	w.mockDeploy(env)
	spec := testSpec("rollback")
	spec.TrafficKeys = deploys.KeysRole
	res := runDeploy(t, env, spec)
	if res.Outcome != OutcomePromoted {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Reason)
	}
	// The stable backend runs the new version; the canary backend is empty.
	if got := w.weightsNow(); got["stable"] != 100 || got["canary"] != 0 || len(got) != 2 {
		t.Fatalf("weights %s, want stable=100 canary=0", activities.FormatWeights(got))
	}
	if w.stable != "v2" || w.called("stop:v2") != 1 || w.called("stop:v1") != 0 {
		t.Fatalf("stable %s, stop v2 %d, stop v1 %d: want v2 promoted onto the stable backend and the canary backend stopped", w.stable, w.called("stop:v2"), w.called("stop:v1"))
	}
	if res.FinalWeights["stable"] != 100 {
		t.Fatalf("final weights %v", res.FinalWeights)
	}
}
