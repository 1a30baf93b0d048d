package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/drills"
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
	recoveryFails  bool
}

func (w *drillWorld) mock(env *testsuite.TestWorkflowEnvironment) {
	w.mockDeploy(env) // SetWeights for the failover child
	var a *activities.Activities
	env.OnActivity(a.Evaluate, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ChecksInput) ([]activities.CheckResult, error) {
		return []activities.CheckResult{{Name: in.Checks[0].Name, Value: 0.5, OK: !w.preflightFails, At: time.Now().UnixMilli(), Detail: "error_rate 0.5 above 0.02"}}, nil
	})
	env.OnActivity(a.InjectFault, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.FaultInput) (activities.FaultResult, error) {
		w.count("inject")
		w.mu.Lock()
		w.faults[in.Fault.Kind] = true
		w.mu.Unlock()
		return activities.FaultResult{Handle: "h1", At: time.Now().UnixMilli()}, nil
	})
	env.OnActivity(a.StopFault, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.FaultInput) (activities.FaultResult, error) {
		w.count("stop-fault")
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.failStop > 0 {
			w.failStop--
			return activities.FaultResult{}, errors.New("503 from the fault API")
		}
		delete(w.faults, in.Fault.Kind)
		w.restored = append(w.restored, in.Handle)
		return activities.FaultResult{Handle: in.Handle, At: time.Now().UnixMilli(), Attempt: activity.GetInfo(ctx).Attempt}, nil
	})
	blocked := func(in activities.WaitInput) bool { return in.Checks[0].Name == w.block }
	env.OnActivity(a.WaitFor, mock.Anything, mock.MatchedBy(blocked)).After(24*time.Hour).Return(activities.WaitResult{TimedOut: true}, nil)
	env.OnActivity(a.WaitFor, mock.Anything, mock.MatchedBy(func(in activities.WaitInput) bool { return !blocked(in) })).Return(
		func(ctx context.Context, in activities.WaitInput) (activities.WaitResult, error) {
			if in.Checks[0].Name == "recovered" && w.recoveryFails {
				return activities.WaitResult{TimedOut: true, Detail: "recovered=0.3 (FAIL)"}, nil
			}
			now := time.Now().UnixMilli()
			return activities.WaitResult{Met: true, At: now, Results: []activities.CheckResult{{Name: in.Checks[0].Name, OK: in.Until == activities.UntilAllPass, At: now}},
				Series: map[string][]ledger.Point{in.Checks[0].Name: {{At: now, Value: 0.01}}}}, nil
		})
	if w.guardAfter > 0 {
		env.OnActivity(a.Guard, mock.Anything, mock.Anything).After(w.guardAfter).Return(activities.GuardResult{Tripped: true, Name: "outage", At: time.Now().UnixMilli(), Detail: "error_rate 0.95 above 0.9"}, nil)
	} else {
		env.OnActivity(a.Guard, mock.Anything, mock.Anything).After(1000*time.Hour).Return(activities.GuardResult{}, nil)
	}
	env.OnActivity(a.RunAction, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
		w.count("action:" + in.Action.Name)
		return activities.ActionResult{StartedAt: time.Now().UnixMilli()}, nil
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
			rec := runDrill(t, env, drillSpec(tc.mode))
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
	rec := runDrill(t, env, spec)
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
	var rec ledger.Record
	if err := env.GetWorkflowResult(&rec); err != nil {
		t.Fatalf("result: %v", err)
	}
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
	rec := runDrill(t, env, drillSpec(drills.ModeAutomated))
	if rec.Outcome != ledger.OutcomeAborted || !strings.Contains(rec.Reason, "preflight refused") || !strings.Contains(rec.Reason, "nothing was injected") {
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
	rec := runDrill(t, env, drillSpec(drills.ModeAutomated))
	if rec.Outcome != ledger.OutcomeFailed || !strings.Contains(rec.Reason, "recovery: timed out") {
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
