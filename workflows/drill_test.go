package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/lease"
	"github.com/drillship/drillship/ledger"
)

func f(v float64) *float64 { return &v }

func drillSpec(mode string) drills.Spec {
	local := &activities.Target{Provider: "local"}
	s := drills.Spec{
		Name: "region-failover", Environment: "test",
		Providers:   drills.Providers{Traffic: local, Signals: local, Faults: local, Runner: local},
		SteadyState: []activities.Check{{Name: "steady", Query: activities.Query{Metric: "error_rate"}, Max: f(0.02)}},
		Inject:      []drills.Step{{Name: "east down", Fault: &activities.Fault{Kind: "region_down", Params: map[string]string{"region": "east"}}}},
		Detection:   drills.Detection{Signals: []activities.Check{{Name: "probe", Query: activities.Query{Metric: "up"}, Min: f(1)}}},
		Mitigation: drills.Mitigation{Mode: mode,
			Steps: []drills.Step{{Name: "evacuate", Failover: &drills.Failover{Weights: activities.Weights{"east": 0, "west": 100}}}},
			SLO:   []activities.Check{{Name: "slo", Query: activities.Query{Metric: "error_rate"}, Max: f(0.02)}}},
		Recovery:   drills.Recovery{Checks: []activities.Check{{Name: "recovered", Query: activities.Query{Metric: "error_rate"}, Max: f(0.02)}}},
		Restore:    []drills.Step{{Name: "failback", Failover: &drills.Failover{Weights: activities.Weights{"east": 50, "west": 50}}}},
		Guardrails: drills.Guardrails{Checks: []activities.Check{{Name: "outage", Query: activities.Query{Metric: "error_rate"}, Max: f(0.9), For: time.Second}}},
	}
	if err := s.Validate(nil); err != nil {
		panic(err)
	}
	return s
}

// drillWorld answers the drill's activities; block names the wait (by its
// first check) that never ends on its own, guardAfter when the guardrail
// trips (0: never).
type drillWorld struct {
	*world
	preflightFails bool
	block          string
	guardAfter     time.Duration
	guardGaps      []activities.Gap
	recoveryFails  bool

	lockedBy         string // AcquireLease refuses, naming this holder
	leaseAcquired    int
	leaseReleased    int
	injectFails      bool                    // InjectFault fails before anything took effect
	badRegion        string                  // SetWeights refuses weights naming this region
	loadResetFails   bool                    // the "load 1x" action fails
	gapMs            map[string]int64        // a wait (by its first check) resumed after this long unobserved
	restoreEmpty     bool                    // the steady state after restore has no data (drained)
	faultsIn         []activities.FaultInput // every inject and stop
	actions          []activities.Action
	putBacks         int
	loadMultiplier   string
	snapshotWeights  activities.Weights
	injectedByOthers map[string]bool // fault kinds someone else put in: never ours to stop
}

func (w *drillWorld) mock(env *testsuite.TestWorkflowEnvironment) {
	var a *activities.Activities
	var la *lease.Activities
	w.mockPreflight(env)
	// SetWeights for the failover child; a region the provider does not
	// know is refused, as a real traffic provider does.
	env.OnActivity(a.SetWeights, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.WeightsInput) (activities.WeightsResult, error) {
		w.count("weights")
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, bad := in.Weights[w.badRegion]; bad && w.badRegion != "" {
			return activities.WeightsResult{}, temporal.NewNonRetryableApplicationError("unknown region "+w.badRegion, "Permanent", nil)
		}
		for k, v := range in.Weights {
			w.weights[k] = v
		}
		return activities.WeightsResult{Weights: in.Weights, At: time.Now().UnixMilli(), Changed: true, Attempt: activity.GetInfo(ctx).Attempt}, nil
	})
	env.OnActivity(la.AcquireLease, mock.Anything, mock.Anything).Return(func(ctx context.Context, in lease.AcquireInput) (lease.AcquireResult, error) {
		w.count("lease")
		if w.lockedBy != "" {
			return lease.AcquireResult{Granted: false, Key: "traffic:local", HeldBy: w.lockedBy, HeldWhat: "deploy web v3"}, nil
		}
		w.mu.Lock()
		w.leaseAcquired++
		w.mu.Unlock()
		return lease.AcquireResult{Granted: true}, nil
	})
	env.OnActivity(la.ReleaseLease, mock.Anything, mock.Anything).Return(func(ctx context.Context, in lease.ReleaseInput) error {
		w.mu.Lock()
		w.leaseReleased++
		w.mu.Unlock()
		return nil
	})
	env.OnActivity(a.TakeSnapshot, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.SnapshotInput) (activities.Snapshot, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.snapshotWeights = activities.Weights{}
		for k, v := range w.weights {
			w.snapshotWeights[k] = v
		}
		one := 1.0
		return activities.Snapshot{Weights: []activities.TargetWeights{{Target: activities.Target{Provider: "local"}, Weights: w.snapshotWeights}}, Load: &one, At: time.Now().UnixMilli()}, nil
	})
	env.OnActivity(a.PutBack, mock.Anything, mock.Anything).Return(func(ctx context.Context, s activities.Snapshot) (activities.PutBackResult, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.putBacks++
		var changed []string
		for _, tw := range s.Weights {
			for k, v := range tw.Weights {
				if w.weights[k] != v {
					changed = append(changed, fmt.Sprintf("%s %d -> %d", k, w.weights[k], v))
					w.weights[k] = v
				}
			}
		}
		return activities.PutBackResult{Changed: changed, At: time.Now().UnixMilli()}, nil
	})
	env.OnActivity(a.Evaluate, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ChecksInput) ([]activities.CheckResult, error) {
		return []activities.CheckResult{{Name: in.Checks[0].Name, Value: 0.5, OK: !w.preflightFails, At: time.Now().UnixMilli(), Detail: "error_rate 0.5 above 0.02"}}, nil
	})
	env.OnActivity(a.InjectFault, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.FaultInput) (activities.FaultResult, error) {
		w.count("inject")
		w.mu.Lock()
		defer w.mu.Unlock()
		w.faultsIn = append(w.faultsIn, in)
		if w.injectFails {
			return activities.FaultResult{}, temporal.NewNonRetryableApplicationError("inject region_down: region \"east\" unknown", "Permanent", nil)
		}
		w.faults[in.Fault.Kind] = true
		return activities.FaultResult{Handle: "h1", At: time.Now().UnixMilli()}, nil
	})
	env.OnActivity(a.StopFault, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.FaultInput) (activities.FaultResult, error) {
		w.count("stop-fault")
		w.mu.Lock()
		defer w.mu.Unlock()
		w.faultsIn = append(w.faultsIn, in)
		if w.failStop > 0 {
			w.failStop--
			return activities.FaultResult{}, errors.New("503 from the fault API")
		}
		res := activities.FaultResult{Handle: in.Handle, At: time.Now().UnixMilli(), Attempt: activity.GetInfo(ctx).Attempt}
		if w.injectedByOthers[in.Fault.Kind] {
			res.NotOurs = activities.NotOurs("h1", "")
		}
		if !w.faults[in.Fault.Kind] || in.Fault.Owner == "" {
			res.NotFound = true
			return res, nil
		}
		delete(w.faults, in.Fault.Kind)
		w.restored = append(w.restored, in.Handle)
		return res, nil
	})
	blocked := func(in activities.WaitInput) bool { return in.Checks[0].Name == w.block }
	env.OnActivity(a.WaitFor, mock.Anything, mock.MatchedBy(blocked)).After(24*time.Hour).Return(activities.WaitResult{TimedOut: true}, nil)
	env.OnActivity(a.WaitFor, mock.Anything, mock.MatchedBy(func(in activities.WaitInput) bool { return !blocked(in) })).Return(
		func(ctx context.Context, in activities.WaitInput) (activities.WaitResult, error) {
			name := in.Checks[0].Name
			if name == "recovered" && w.recoveryFails {
				return activities.WaitResult{TimedOut: true, Detail: "recovered=0.3 (FAIL)"}, nil
			}
			if name == "steady" && w.restoreEmpty {
				return activities.WaitResult{TimedOut: true, Detail: "steady=0 (INCONCLUSIVE no data)"}, nil
			}
			now := time.Now().UnixMilli()
			var gaps []activities.Gap
			if ms := w.gapMs[name]; ms > 0 {
				gaps = []activities.Gap{{From: now - ms, To: now - 100, Attempt: 2}}
			}
			return activities.WaitResult{Met: true, At: now, Results: []activities.CheckResult{{Name: name, OK: in.Until == activities.UntilAllPass, At: now}},
				Series: map[string][]ledger.Point{name: {{At: now, Value: 0.01}}}, Gaps: gaps, Attempts: 1 + len(gaps)}, nil
		})
	if w.guardAfter > 0 {
		env.OnActivity(a.Guard, mock.Anything, mock.Anything).After(w.guardAfter).Return(activities.GuardResult{Tripped: true, Name: "outage", At: time.Now().UnixMilli(), Detail: "error_rate 0.95 above 0.9", Gaps: w.guardGaps}, nil)
	} else {
		env.OnActivity(a.Guard, mock.Anything, mock.Anything).After(1000*time.Hour).Return(activities.GuardResult{}, nil)
	}
	env.OnActivity(a.RunAction, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
		w.count("action:" + in.Action.Name)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.actions = append(w.actions, in.Action)
		if in.Action.Name == "load" {
			if in.Action.Params["multiplier"] == "1" && w.loadResetFails {
				return activities.ActionResult{}, temporal.NewNonRetryableApplicationError("load runner unreachable", "Permanent", nil)
			}
			w.loadMultiplier = in.Action.Params["multiplier"]
		}
		return activities.ActionResult{StartedAt: time.Now().UnixMilli(), EndedAt: time.Now().UnixMilli()}, nil
	})
}

func newDrillWorld() *drillWorld {
	w := &drillWorld{world: newWorld()}
	w.weights = activities.Weights{"east": 50, "west": 50}
	return w
}

func runDrill(t *testing.T, env *testsuite.TestWorkflowEnvironment, spec drills.Spec) ledger.Record {
	t.Helper()
	env.ExecuteWorkflow(Drill, DrillInput{Spec: spec})
	if !env.IsWorkflowCompleted() {
		t.Fatal("drill did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("drill error: %v", err)
	}
	var rec ledger.Record
	if err := env.GetWorkflowResult(&rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// endedDrill runs a drill that must end failed in Temporal terms with the
// given error type, and returns the record its error carries.
func endedDrill(t *testing.T, env *testsuite.TestWorkflowEnvironment, spec drills.Spec, errType string) ledger.Record {
	t.Helper()
	if spec.Name != "" {
		env.ExecuteWorkflow(Drill, DrillInput{Spec: spec})
	}
	if !env.IsWorkflowCompleted() {
		t.Fatal("drill did not complete")
	}
	err := env.GetWorkflowError()
	if err == nil {
		t.Fatalf("the drill completed; want it to end failed with %s", errType)
	}
	if got := EndingOf(err); got != errType {
		t.Fatalf("ending %q (%v), want %s", got, err, errType)
	}
	var rec ledger.Record
	if !RecordOf(err, &rec) {
		t.Fatalf("%v: no record in the error details", err)
	}
	return rec
}

// restoredWorld asserts that the environment is back to baseline.
func restoredWorld(t *testing.T, w *drillWorld, rec ledger.Record) {
	t.Helper()
	if len(w.faults) != 0 {
		t.Fatalf("faults still in effect after the drill: %v", w.faults)
	}
	if got := w.weightsNow(); got["east"] != 50 || got["west"] != 50 {
		t.Fatalf("weights %s after the drill, want east=50 west=50", activities.FormatWeights(got))
	}
	if !rec.Restored {
		t.Fatalf("record says not restored: %+v", rec.Findings)
	}
	if w.leaseAcquired > 0 && w.leaseReleased == 0 {
		t.Fatal("the lease was taken and never released")
	}
}

func hasFinding(rec ledger.Record, part string) bool {
	for _, f := range rec.Findings {
		if strings.Contains(f.Title, part) {
			return true
		}
	}
	return false
}

func TestDrillAutomatedRecovers(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.mock(env)
	rec := runDrill(t, env, drillSpec(drills.ModeAutomated))
	if rec.Outcome != ledger.OutcomeRecovered {
		t.Fatalf("outcome %s (%s)", rec.Outcome, rec.Reason)
	}
	restoredWorld(t, w, rec)
	for _, m := range ledger.Order {
		if _, ok := rec.MarkAt(m); !ok {
			t.Fatalf("mark %s missing: %+v", m, rec.Marks)
		}
	}
	if err := ledger.Monotonic(rec.Marks); err != nil {
		t.Fatal(err)
	}
	if rec.MitigationLatencyMs == nil || len(rec.Scores) != 5 || len(rec.SLI) == 0 {
		t.Fatalf("latency %v scores %d sli %d", rec.MitigationLatencyMs, len(rec.Scores), len(rec.SLI))
	}
}

func TestDrillGuardrailAbortsInEachPhase(t *testing.T) {
	for _, tc := range []struct{ phase, block, mode string }{
		{"detect", "probe", drills.ModeAutomated},
		{"engage", "", drills.ModeGameday},
		{"mitigate", "slo", drills.ModeAutomated},
		{"recover", "recovered", drills.ModeAutomated},
	} {
		t.Run(tc.phase, func(t *testing.T) {
			env, w := newEnv(t), newDrillWorld()
			w.block, w.guardAfter = tc.block, time.Minute
			w.mock(env)
			rec := endedDrill(t, env, drillSpec(tc.mode), ErrAborted)
			if rec.Outcome != ledger.OutcomeAborted || !strings.Contains(rec.Reason, "guardrail outage tripped") {
				t.Fatalf("outcome %s reason %q", rec.Outcome, rec.Reason)
			}
			restoredWorld(t, w, rec)
			var found bool
			for _, f := range rec.Findings {
				found = found || strings.Contains(f.Title, "guardrail tripped")
			}
			if !found {
				t.Fatalf("findings %+v: want the guardrail trip listed", rec.Findings)
			}
			if _, ok := rec.MarkAt(ledger.Recovered); ok {
				t.Fatal("an aborted drill must not claim recovery")
			}
		})
	}
}

func TestDrillMaxDurationAborts(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.block = "slo"
	w.mock(env)
	spec := drillSpec(drills.ModeAutomated)
	spec.Guardrails.MaxDuration = 10 * 60 * 1e9
	rec := endedDrill(t, env, spec, ErrAborted)
	if rec.Outcome != ledger.OutcomeAborted || !strings.Contains(rec.Reason, "maximum duration") {
		t.Fatalf("outcome %s reason %q", rec.Outcome, rec.Reason)
	}
	restoredWorld(t, w, rec)
}

func TestDrillCancelledDuringMitigationStillRestores(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.block = "slo"
	w.mock(env)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, time.Minute)
	env.ExecuteWorkflow(Drill, DrillInput{Spec: drillSpec(drills.ModeAutomated)})
	rec := endedDrill(t, env, drills.Spec{}, ErrAborted)
	if rec.Outcome != ledger.OutcomeAborted || !strings.Contains(rec.Reason, "cancelled") {
		t.Fatalf("outcome %s reason %q", rec.Outcome, rec.Reason)
	}
	restoredWorld(t, w, rec)
}

func TestDrillGamedayDrivenBySignals(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.mock(env)
	var errAck, errDiag, errNoNote error
	start := env.Now()
	env.RegisterDelayedCallback(func() {
		v, _ := env.QueryWorkflow(QueryState)
		var st DrillState
		_ = v.Get(&st)
		if st.Phase != "engage" || !strings.Contains(st.Waiting, "ack") {
			t.Errorf("phase %s waiting %q, want engage waiting for an ack", st.Phase, st.Waiting)
		}
		update(env, UpdateAck, Command{Who: "oncall-ann"}, &errAck)
	}, 3*time.Minute)
	var errAgain error
	env.RegisterDelayedCallback(func() { update(env, UpdateAck, Command{Who: "oncall-bob"}, &errAgain) }, 3*time.Minute+30*time.Second)
	env.RegisterDelayedCallback(func() { update(env, UpdateDiagnose, Command{Who: "oncall-ann"}, &errNoNote) }, 4*time.Minute)
	env.RegisterDelayedCallback(func() {
		update(env, UpdateDiagnose, Command{Who: "oncall-ann", Reason: "east LB health checks failing"}, &errDiag)
	}, 10*time.Minute)
	spec := drillSpec(drills.ModeGameday)
	spec.Mitigation.Steps = nil // people mitigate
	rec := runDrill(t, env, spec)
	if errAck != nil || errDiag != nil {
		t.Fatal(errAck, errDiag)
	}
	if errNoNote == nil {
		t.Fatal("diagnose without a note must be refused")
	}
	if errAgain == nil || !strings.Contains(errAgain.Error(), "already acknowledged by oncall-ann") || !strings.Contains(errAgain.Error(), "nothing changed") {
		t.Fatalf("a second ack: %v, want refused saying nothing changed", errAgain)
	}
	if rec.Outcome != ledger.OutcomeRecovered || rec.Mode != drills.ModeGameday {
		t.Fatalf("outcome %s mode %s", rec.Outcome, rec.Mode)
	}
	eng, _ := rec.MarkAt(ledger.Engaged)
	diag, _ := rec.MarkAt(ledger.Diagnosed)
	if eng != start.Add(3*time.Minute).UnixMilli() || diag != start.Add(10*time.Minute).UnixMilli() {
		t.Fatalf("engaged %d diagnosed %d, want start+3m %d and start+10m %d", eng, diag, start.Add(3*time.Minute).UnixMilli(), start.Add(10*time.Minute).UnixMilli())
	}
	for _, s := range rec.Scores {
		if s.Phase == "engagement" && s.Status != ledger.StatusMet {
			t.Fatalf("engagement %+v: 3m is within the 5m target", s)
		}
	}
	if len(rec.Audit) < 2 || rec.Audit[0].Who != "oncall-ann" {
		t.Fatalf("audit %+v", rec.Audit)
	}
	restoredWorld(t, w, rec)
}

func TestDrillPreflightRefusal(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.preflightFails = true
	w.mock(env)
	rec := endedDrill(t, env, drillSpec(drills.ModeAutomated), ErrRefused)
	if rec.Outcome != ledger.OutcomeRefused || !strings.Contains(rec.Reason, "steady state does not hold") || !strings.Contains(rec.Reason, "nothing was injected") {
		t.Fatalf("outcome %s reason %q", rec.Outcome, rec.Reason)
	}
	if w.called("inject") != 0 || len(rec.Marks) != 0 {
		t.Fatalf("inject called %d times, marks %v: nothing may be injected", w.called("inject"), rec.Marks)
	}
	if !rec.Restored {
		t.Fatal("nothing changed, so the environment is as it was")
	}
}

func TestDrillRecoveryTimeout(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.recoveryFails = true
	w.mock(env)
	rec := endedDrill(t, env, drillSpec(drills.ModeAutomated), ErrNotRecovered)
	if rec.Outcome != ledger.OutcomeNotRecovered || !strings.Contains(rec.Reason, "recovery: timed out") {
		t.Fatalf("outcome %s reason %q", rec.Outcome, rec.Reason)
	}
	restoredWorld(t, w, rec)
}

func TestDrillRestoreFailureRetried(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.failStop = 2
	w.mock(env)
	rec := runDrill(t, env, drillSpec(drills.ModeAutomated))
	if rec.Outcome != ledger.OutcomeRecovered {
		t.Fatalf("outcome %s (%s)", rec.Outcome, rec.Reason)
	}
	restoredWorld(t, w, rec)
	if w.called("stop-fault") != 3 {
		t.Fatalf("stop-fault called %d times, want 3 (two failures, then success)", w.called("stop-fault"))
	}
	var found bool
	for _, f := range rec.Findings {
		found = found || strings.Contains(f.Title, "restore needed 3 attempts")
	}
	if !found {
		t.Fatalf("findings %+v: want a remediation item for the restore retries", rec.Findings)
	}
}

func TestDrillProductionWaitsForApproval(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.mock(env)
	spec := drillSpec(drills.ModeAutomated)
	spec.Production = true
	var rejected error
	env.RegisterDelayedCallback(func() {
		if w.called("inject") != 0 {
			t.Error("a production drill injected before approval")
		}
		update(env, UpdateApprove, Command{Who: "incident-commander", Reason: "change CHG-42"}, &rejected)
	}, time.Hour)
	rec := runDrill(t, env, spec)
	if rejected != nil || rec.Outcome != ledger.OutcomeRecovered || w.called("inject") != 1 {
		t.Fatalf("outcome %s inject %d rejected %v", rec.Outcome, w.called("inject"), rejected)
	}
	if len(rec.Audit) == 0 || rec.Audit[0].Action != "approve" || rec.Audit[0].Who != "incident-commander" || rec.Audit[0].Reason != "change CHG-42" {
		t.Fatalf("audit %+v: want the approval with who and why", rec.Audit)
	}
}

func eventWith(rec ledger.Record, kind, part string) bool {
	for _, e := range rec.Events {
		if e.Kind == kind && strings.Contains(e.Detail, part) {
			return true
		}
	}
	return false
}

// Issue 11 item 1: a restore step that failed (a region the provider does
// not know) was listed as recovered. Now the drill ends failed in Temporal
// terms, restore_failed, with no "restored" mark; the snapshot still puts
// the weights back. (Old code: outcome recovered, the workflow completed.)
func TestDrillFailedRestoreStepIsRestoreFailed(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.badRegion = "eest"
	w.mock(env)
	spec := drillSpec(drills.ModeAutomated)
	spec.Restore = []drills.Step{{Name: "fail back", Weights: activities.Weights{"eest": 50, "west": 50}}}
	rec := endedDrill(t, env, spec, ErrRestoreFailed)
	if rec.Outcome != ledger.OutcomeRestoreFailed || rec.Restored || !strings.Contains(rec.Reason, "restore step fail back failed") {
		t.Fatalf("outcome %s restored %v reason %q", rec.Outcome, rec.Restored, rec.Reason)
	}
	if _, ok := rec.MarkAt(ledger.Restored); ok {
		t.Fatal("a failed restore must not carry a restored mark")
	}
	if _, ok := rec.MarkAt(ledger.Recovered); !ok {
		t.Fatal("the recovery observed before restore stays in the record")
	}
	if !hasFinding(rec, "restore step fail back failed") {
		t.Fatalf("findings %+v", rec.Findings)
	}
	// The preflight snapshot puts back what the failed step could not.
	if got := w.weightsNow(); got["east"] != 50 || got["west"] != 50 || len(rec.PutBack) == 0 {
		t.Fatalf("weights %s, put back %v: want 50/50 from the snapshot", activities.FormatWeights(got), rec.PutBack)
	}
}

// Issue 11 items 1 and 8: the steady state after restore read on a drained
// region (no data: inconclusive) never counts as restored.
func TestDrillInconclusiveSteadyStateIsRestoreFailed(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.restoreEmpty = true
	w.mock(env)
	rec := endedDrill(t, env, drillSpec(drills.ModeAutomated), ErrRestoreFailed)
	if rec.Restored || !hasFinding(rec, "steady state did not return after restore") {
		t.Fatalf("restored %v findings %+v", rec.Restored, rec.Findings)
	}
	if _, ok := rec.MarkAt(ledger.Restored); ok {
		t.Fatal("no restored mark without a steady state observed")
	}
}

// Issue 11 item 3: an inject that failed left a fault that was never
// started; restore finds nothing of the drill's (NotFound) and says so
// instead of "could not stop ... manual action needed". Since
// "inject-refusal", a first fault refused at once with no handle (nothing
// took effect) is a refused drill, not one that "did not recover".
func TestDrillNeverStartedFaultIsNoFinding(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.injectFails = true
	w.mock(env)
	rec := endedDrill(t, env, drillSpec(drills.ModeAutomated), ErrRefused)
	if rec.Outcome != ledger.OutcomeRefused || !rec.Restored || !strings.Contains(rec.Reason, "could not be injected, and nothing took effect") {
		t.Fatalf("outcome %s restored %v reason %q", rec.Outcome, rec.Restored, rec.Reason)
	}
	if hasFinding(rec, "could not stop") {
		t.Fatalf("findings %+v: a fault never started needs no manual action", rec.Findings)
	}
	if !eventWith(rec, "restore", "never took effect") {
		t.Fatalf("events %+v: want restore to say there was nothing to stop", rec.Events)
	}
	if _, ok := rec.MarkAt(ledger.Injected); ok {
		t.Fatal("nothing was injected")
	}
}

// Restore acts on the drill's own faults: every inject and stop carries the
// drill's id as owner, a fault of someone else that the provider reports is
// left alone and noted, and runbook actions carry an idempotency key.
func TestDrillOwnsItsFaultsAndKeysItsActions(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.injectedByOthers = map[string]bool{"region_down": true}
	w.mock(env)
	spec := drillSpec(drills.ModeAutomated)
	spec.Mitigation.Steps = append(spec.Mitigation.Steps, drills.Step{Name: "shed recs", Action: &activities.Action{Name: "shed"}})
	rec := runDrill(t, env, spec)
	restoredWorld(t, w, rec)
	if len(w.faultsIn) != 2 {
		t.Fatalf("fault calls %+v: want one inject and one stop", w.faultsIn)
	}
	for _, in := range w.faultsIn {
		if in.Fault.Owner != rec.ID || rec.ID == "" {
			t.Fatalf("fault %+v: owner %q, want the drill id %q", in.Fault, in.Fault.Owner, rec.ID)
		}
	}
	if !eventWith(rec, "restore", "left alone") || !hasFinding(rec, "another owner's fault") {
		t.Fatalf("events %+v findings %+v: want the other owner's fault noted", rec.Events, rec.Findings)
	}
	var key string
	for _, a := range w.actions {
		if a.Name == "shed" {
			key = a.Key
		}
	}
	if key != rec.ID+"/shed recs" {
		t.Fatalf("action key %q, want %q", key, rec.ID+"/shed recs")
	}
}

// Issue 11 item 4: a worker crash during a check was written into the
// ledger as slow automation. The blind time is now a blind spot, an event
// and a finding, and the mark it delayed says so.
func TestDrillBlindSpotsRecorded(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.gapMs = map[string]int64{"slo": 11_300}
	w.mock(env)
	rec := runDrill(t, env, drillSpec(drills.ModeAutomated))
	if len(rec.BlindSpots) != 1 || rec.BlindSpots[0].Ms() != 11_200 || rec.BlindSpots[0].Attempt != 2 {
		t.Fatalf("blind spots %+v: want one of 11.2 s", rec.BlindSpots)
	}
	if !hasFinding(rec, `check "Mitigated: SLO holds again" unchecked for 11.2 s`) || !eventWith(rec, "blind", "unchecked for 11.2 s") {
		t.Fatalf("findings %+v", rec.Findings)
	}
	for _, m := range rec.Marks {
		if m.Name == ledger.Mitigated && m.DelayedMs < 11_000 {
			t.Fatalf("mark %+v: want it flagged as delayed by the crash", m)
		}
	}
}

// The guardrails' blind time (from the guard's own gaps) is recorded too.
func TestDrillGuardrailBlindTimeRecorded(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.block, w.guardAfter = "slo", time.Minute
	now := time.Now().UnixMilli()
	w.guardGaps = []activities.Gap{{From: now - 20_000, To: now - 8_800, Attempt: 2}}
	w.mock(env)
	rec := endedDrill(t, env, drillSpec(drills.ModeAutomated), ErrAborted)
	if !hasFinding(rec, "guardrails unchecked for 11.2 s") || len(rec.BlindSpots) != 1 || rec.BlindSpots[0].What != "guardrails" {
		t.Fatalf("blind spots %+v findings %+v", rec.BlindSpots, rec.Findings)
	}
}

// Issue 11 item 6: the load reset's error was discarded (`_ =`), so a
// failed reset made no finding and the drill still said restored.
func TestDrillLoadResetFailureIsRestoreFailed(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.loadResetFails = true
	w.mock(env)
	spec := drillSpec(drills.ModeAutomated)
	spec.Load = 2
	rec := endedDrill(t, env, spec, ErrRestoreFailed)
	if rec.Restored || !hasFinding(rec, "could not put load back to 1x") {
		t.Fatalf("restored %v findings %+v", rec.Restored, rec.Findings)
	}
	var keys []string
	for _, a := range w.actions {
		keys = append(keys, a.Key)
	}
	if len(keys) != 2 || keys[0] != rec.ID+"/load" || keys[1] != rec.ID+"/load-reset" {
		t.Fatalf("load action keys %v", keys)
	}
}

func TestDrillLoadResetLabelled(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.mock(env)
	spec := drillSpec(drills.ModeAutomated)
	spec.Load = 2
	rec := runDrill(t, env, spec)
	if w.loadMultiplier != "1" || !eventWith(rec, "restore", "load back to 1x") {
		t.Fatalf("load %s events %+v", w.loadMultiplier, rec.Events)
	}
	if eventWith(rec, "restore", "stop region_down: load") {
		t.Fatal("the load reset is not a fault stop")
	}
}

// Issue 11 item 7: a cancelled gameday drill was classified "failed".
func TestDrillCancelledGamedayIsAborted(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.mock(env)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 2*time.Minute) // waiting for an ack
	env.ExecuteWorkflow(Drill, DrillInput{Spec: drillSpec(drills.ModeGameday)})
	rec := endedDrill(t, env, drills.Spec{}, ErrAborted)
	if rec.Outcome != ledger.OutcomeAborted || !strings.Contains(rec.Reason, "cancelled") {
		t.Fatalf("outcome %s reason %q", rec.Outcome, rec.Reason)
	}
	restoredWorld(t, w, rec)
}

// A drill whose targets another run holds is refused: nothing injected, the
// reason names the holder.
func TestDrillLeaseHeldIsRefused(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.lockedBy = "deploy/web/v3"
	w.mock(env)
	rec := endedDrill(t, env, drillSpec(drills.ModeAutomated), ErrRefused)
	if rec.Outcome != ledger.OutcomeRefused || !strings.Contains(rec.Reason, "deploy/web/v3") || w.called("inject") != 0 || !rec.Restored {
		t.Fatalf("outcome %s reason %q inject %d", rec.Outcome, rec.Reason, w.called("inject"))
	}
}

// A drill whose provider checks refuse (the worker's role lacks a verb the
// fault needs) injects nothing and says which check; a warning is a finding.
func TestDrillProviderChecks(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.preflight = []activities.Finding{
		{Check: "pdb", Detail: "faults kubernetes: Deployment web has no PodDisruptionBudget"},
		{Check: "rbac", Detail: "faults kubernetes: the worker may not patch nodes (cluster-wide)", Refuse: true},
	}
	w.mock(env)
	rec := endedDrill(t, env, drillSpec(drills.ModeAutomated), ErrRefused)
	if rec.Outcome != ledger.OutcomeRefused || !strings.Contains(rec.Reason, "may not patch nodes") || w.called("inject") != 0 {
		t.Fatalf("outcome %s reason %q inject %d", rec.Outcome, rec.Reason, w.called("inject"))
	}
	if !slices.ContainsFunc(rec.Findings, func(f ledger.Finding) bool { return strings.Contains(f.Detail, "no PodDisruptionBudget") }) {
		t.Fatalf("findings %v: the warning is missing", rec.Findings)
	}
}

// Issue 11 item 10: a deploy step returned from inside the inject loop and
// skipped every later step and phase. Now the fault after it is injected,
// the mitigation step runs and recovery is observed. The child deploy ends
// failed (RolledBack) with its result in the error.
func TestDrillDeployStepRunsLaterPhases(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.mock(env)
	env.OnWorkflow(Deploy, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, in DeployInput) (DeployResult, error) {
		now := workflow.Now(ctx).UnixMilli()
		ttr := int64(40_000)
		res := DeployResult{Service: in.Spec.Service, Version: in.Version, Outcome: OutcomeRolledBack, Reason: "error_rate 0.1 above 0.02",
			FirstTrafficAt: now, FailedSampleAt: now + 10_000, RollbackAt: now + 50_000, TimeToRollbackMs: &ttr,
			Steps: []StepRecord{{Step: 1, Weight: 10, StartedAt: now}}}
		return res, endedAs(ErrRolledBack, "rolled back", res)
	})
	spec := drillSpec(drills.ModeAutomated)
	spec.Inject = []drills.Step{
		{Name: "deploy v9", Deploy: &drills.DeployStep{Spec: "web-canary", Version: "v9"}},
		{Name: "east down", Fault: &activities.Fault{Kind: "region_down", Params: map[string]string{"region": "east"}}},
	}
	spec.Mitigation.Steps = []drills.Step{{Name: "shed recs", Action: &activities.Action{Name: "shed"}}}
	if err := spec.Validate(nil); err != nil {
		t.Fatal(err)
	}
	rec := runDrill(t, env, spec)
	if w.called("inject") != 1 || w.called("action:shed") != 1 {
		t.Fatalf("inject %d shed %d: the steps after the deploy must run", w.called("inject"), w.called("action:shed"))
	}
	if rec.TimeToRollbackMs == nil || *rec.TimeToRollbackMs != 40_000 {
		t.Fatalf("time to rollback %v", rec.TimeToRollbackMs)
	}
	for _, m := range ledger.Order {
		if _, ok := rec.MarkAt(m); !ok {
			t.Fatalf("mark %s missing: %+v", m, rec.Marks)
		}
	}
	restoredWorld(t, w, rec)
}

// The database workload's figures are read after it ends, and one still
// writing when the drill ends is stopped (cancellation waited for) before
// restore, with a finding instead of figures.
func TestDrillWorkload(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration
	}{{"finishes", time.Second}, {"still-writing", 24 * time.Hour}} {
		t.Run(tc.name, func(t *testing.T) {
			env, w := newEnv(t), newDrillWorld()
			w.mock(env)
			var a *activities.Activities
			env.OnActivity(a.Workload, mock.Anything, mock.Anything).After(tc.after).Return(func(ctx context.Context, in activities.WorkloadInput) (activities.WorkloadResult, error) {
				now := time.Now().UnixMilli()
				return activities.WorkloadResult{Acked: 120, Missing: 2, FirstFailureAt: now - 5000, RecoveredAt: now}, nil
			})
			spec := drillSpec(drills.ModeAutomated)
			spec.Providers.Database = &activities.Target{Provider: "local"}
			spec.Workload = &drills.Workload{}
			rec := runDrill(t, env, spec)
			switch tc.name {
			case "finishes":
				if rec.RPO == nil || *rec.RPO != 2 || !hasFinding(rec, "2 acknowledged writes were lost") {
					t.Fatalf("rpo %v findings %+v", rec.RPO, rec.Findings)
				}
			default:
				if rec.RPO != nil || !hasFinding(rec, "workload had not finished and was stopped") {
					t.Fatalf("rpo %v findings %+v", rec.RPO, rec.Findings)
				}
			}
			restoredWorld(t, w, rec)
		})
	}
}
