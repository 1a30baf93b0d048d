package workflows

// The drill workflow as it ran before the "drill-truth" change. Histories
// recorded by it (and drills still running when a worker is upgraded) replay
// through this frozen copy; new runs take the path in drill.go. Do not edit
// it beyond renames: any change to the commands it issues breaks replay.

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
)

type legacyDrill struct {
	in   DrillInput
	spec drills.Spec
	rec  ledger.Record
	st   DrillState
	act  *activities.Activities

	aborted     string // why the drill stops early; set by guardrail, timer, person
	cancelPhase workflow.CancelFunc
	acked       *Command
	ackAt       int64
	diagnosed   *Command
	diagAt      int64
	approved    bool
	injected    []injectedV0
	loadChanged bool
}

type injectedV0 struct {
	target activities.Target
	fault  activities.Fault
	handle string
}

var errAbortedV0 = errors.New("drill aborted")

// drillV0 runs one drill: preflight, inject, detect, engage, diagnose,
// mitigate, recover, then always restore, and returns the record.
func drillV0(ctx workflow.Context, in DrillInput) (ledger.Record, error) {
	d := &legacyDrill{in: in, spec: in.Spec}
	mode := in.Mode
	if mode == "" {
		mode = in.Spec.Mitigation.Mode
	}
	info := workflow.GetInfo(ctx)
	d.rec = ledger.Record{
		ID: info.WorkflowExecution.ID, Name: in.Spec.Name, Description: in.Spec.Description,
		Environment: in.Spec.Environment, Mode: mode, Targets: in.Spec.Targets,
		StartedAt: workflow.Now(ctx).UnixMilli(), Marks: []ledger.Mark{}, Events: []ledger.Event{}, Findings: []ledger.Finding{},
	}
	d.st = DrillState{Name: in.Spec.Name, Mode: mode, Targets: in.Spec.Targets}
	if err := d.register(ctx); err != nil {
		return d.rec, err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrKind.ValueSet("drill"), AttrScenario.ValueSet(in.Spec.Name),
		AttrEnvironment.ValueSet(in.Spec.Environment))

	err := d.run(ctx)
	// Restore runs on every exit path, in a context that a cancellation of
	// the drill does not reach.
	rctx, _ := workflow.NewDisconnectedContext(ctx)
	d.restore(rctx)
	d.finish(rctx, err)
	return d.rec, nil
}

func (d *legacyDrill) register(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (DrillState, error) {
		s := d.st
		s.Marks = d.rec.Marks
		return s, nil
	}); err != nil {
		return err
	}
	running := func(Command) error {
		if d.st.Phase == "restoring" || d.st.Phase == "done" || d.aborted != "" {
			return fmt.Errorf("the drill is %s", d.st.Phase)
		}
		return nil
	}
	type handler struct {
		name     string
		validate func(Command) error
		apply    func(workflow.Context, Command)
	}
	hs := []handler{
		{UpdateAck, running, func(ctx workflow.Context, c Command) {
			if d.acked == nil {
				d.acked, d.ackAt = &c, workflow.Now(ctx).UnixMilli()
			}
			d.audit(ctx, "ack", c)
		}},
		{UpdateDiagnose, func(c Command) error {
			if c.Reason == "" {
				return errors.New("diagnose needs a note saying what the cause is (--note)")
			}
			return running(c)
		}, func(ctx workflow.Context, c Command) {
			if d.diagnosed == nil {
				d.diagnosed, d.diagAt = &c, workflow.Now(ctx).UnixMilli()
			}
			d.audit(ctx, "diagnose", c)
		}},
		{UpdateMitigated, running, func(ctx workflow.Context, c Command) {
			// A claim; the mark itself comes from the SLO being observed.
			d.audit(ctx, "mitigated", c)
		}},
		{UpdateApprove, func(c Command) error {
			if d.st.Waiting == "" {
				return errors.New("nothing is waiting for approval")
			}
			return nil
		}, func(ctx workflow.Context, c Command) {
			d.audit(ctx, "approve", c)
			d.approved = true
		}},
		{UpdateAbort, running, func(ctx workflow.Context, c Command) {
			d.audit(ctx, "abort", c)
			d.abort(ctx, "aborted by "+whoOfV0(c)+reasonSuffixV0(c.Reason))
		}},
	}
	for _, h := range hs {
		h := h
		err := workflow.SetUpdateHandlerWithOptions(ctx, h.name,
			func(ctx workflow.Context, c Command) (DrillState, error) {
				h.apply(ctx, c)
				return d.st, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, c Command) error { return h.validate(c) }})
		if err != nil {
			return err
		}
	}
	return nil
}

func whoOfV0(c Command) string {
	if c.Who == "" {
		return "unknown"
	}
	return c.Who
}

func (d *legacyDrill) audit(ctx workflow.Context, action string, c Command) {
	now := workflow.Now(ctx).UnixMilli()
	d.rec.Audit = append(d.rec.Audit, ledger.Audit{Action: action, Who: whoOfV0(c), Reason: c.Reason, At: now})
	d.event(now, "audit", action+" by "+whoOfV0(c)+reasonSuffixV0(c.Reason))
	workflow.GetLogger(ctx).Warn("audit", "action", action, "who", whoOfV0(c), "reason", c.Reason)
}

func (d *legacyDrill) event(at int64, kind, detail string) {
	d.rec.Events = append(d.rec.Events, ledger.Event{At: at, Kind: kind, Detail: detail})
}

func (d *legacyDrill) finding(sev, title, detail string) {
	d.rec.Findings = append(d.rec.Findings, ledger.Finding{Severity: sev, Title: title, Detail: detail})
}

// abort ends the drill early: the current phase is cancelled and restore
// runs.
func (d *legacyDrill) abort(ctx workflow.Context, why string) {
	if d.aborted != "" {
		return
	}
	d.aborted = why
	d.event(workflow.Now(ctx).UnixMilli(), "abort", why)
	if d.cancelPhase != nil {
		d.cancelPhase()
	}
}

func (d *legacyDrill) mark(name string, at int64, source, note string) {
	// Marks never go back in time: a person's ack sent before the
	// automation noticed is counted from the detection.
	for _, m := range d.rec.Marks {
		if m.At > at {
			note = fmt.Sprintf("%s (observed %d, before %s; counted from it)", note, at, m.Name)
			at = m.At
		}
	}
	d.rec.Marks = append(d.rec.Marks, ledger.Mark{Name: name, At: at, Source: source, Note: note})
}

func (d *legacyDrill) phase(ctx workflow.Context, p string) {
	d.st.Phase = p
	d.st.PhaseStart = workflow.Now(ctx).UnixMilli()
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** — drill %s (%s)", p, d.spec.Name, d.st.Mode))
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrPhase.ValueSet(p))
}

func (d *legacyDrill) signals() activities.Target {
	return d.spec.Target(activities.CapSignals, nil)
}

func (d *legacyDrill) run(ctx workflow.Context) error {
	spec := d.spec
	d.phase(ctx, "preflight")
	var pre []activities.CheckResult
	if err := d.execAct(ctx, "Preflight: steady state holds", d.act.Evaluate,
		activities.ChecksInput{Signals: d.signals(), Checks: spec.SteadyState}, &pre); err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	for _, r := range pre {
		if !r.OK {
			return preflightErrorV0{fmt.Sprintf("steady state does not hold before injection, so nothing was injected: %s is %.4g (%s)", r.Name, r.Value, r.Detail)}
		}
	}
	if spec.Production {
		d.phase(ctx, "awaiting-approval")
		d.st.Waiting = "approval to inject faults in production"
		err := workflow.Await(ctx, func() bool { return d.approved || d.aborted != "" })
		d.st.Waiting = ""
		if err != nil {
			return err
		}
		if d.aborted != "" {
			return errAbortedV0
		}
	}

	// From here on everything runs under the guardrails.
	pctx, cancel := workflow.WithCancel(ctx)
	d.cancelPhase = cancel
	defer cancel()
	d.startGuardrails(ctx, pctx)

	if spec.Load > 0 && spec.Providers.Runner != nil {
		d.loadChanged = true
		var ar activities.ActionResult
		if err := d.execAct(pctx, fmt.Sprintf("Load at %gx", spec.Load), d.act.RunAction, activities.ActionInput{
			Target: spec.Target(activities.CapRunner, nil),
			Action: activities.Action{Name: "load", Params: map[string]string{"multiplier": strconv.FormatFloat(spec.Load, 'g', -1, 64)}},
		}, &ar); err != nil {
			return d.phaseErr("load", err)
		}
	}

	var workload workflow.Future
	if wl := spec.Workload; wl != nil {
		ao := optsDrillV0("Workload: numbered writes for RTO/RPO", 3)
		ao.StartToCloseTimeout = spec.Guardrails.MaxDuration.D() + time.Minute
		ao.HeartbeatTimeout = 30 * time.Second
		workload = workflow.ExecuteActivity(workflow.WithActivityOptions(pctx, ao), d.act.Workload, activities.WorkloadInput{
			Target: spec.Target(activities.CapDatabase, nil), Interval: wl.Interval.D(), HoldFor: wl.HoldFor.D(),
		})
	}
	defer func() {
		if workload != nil {
			d.collectWorkload(ctx, workload)
		}
	}()

	d.phase(ctx, "inject")
	var t0 int64
	for _, st := range spec.Inject {
		if st.Deploy != nil {
			return d.deployDrill(ctx, pctx, st)
		}
		in := activities.FaultInput{Target: spec.Target(activities.CapFaults, st.Target), Fault: *st.Fault}
		// Recorded before the call: if it fails half-way, restore still
		// stops it (stopping a fault that is not there is fine).
		d.injected = append(d.injected, injectedV0{target: in.Target, fault: in.Fault})
		var fr activities.FaultResult
		if err := d.execAct(pctx, "Inject: "+st.Name, d.act.InjectFault, in, &fr); err != nil {
			return d.phaseErr("inject", err)
		}
		d.injected[len(d.injected)-1].handle = fr.Handle
		t0 = fr.At
		d.event(fr.At, "step", "injected: "+st.Name)
	}
	d.mark(ledger.Injected, t0, "fault activity returned", "")

	d.phase(ctx, "detect")
	var det activities.WaitResult
	if err := d.wait(pctx, "Detect: first signal fires", activities.WaitInput{
		ChecksInput: activities.ChecksInput{Signals: d.signals(), Checks: spec.Detection.Signals},
		Until:       activities.UntilAnyFails, Interval: spec.Detection.Interval.D(), Timeout: spec.Detection.Timeout.D(),
	}, &det); err != nil {
		return d.phaseErr("detect", err)
	}
	if !det.Met {
		d.finding("high", "the fault was not detected within "+spec.Detection.Timeout.String(), det.Detail)
		return fmt.Errorf("detection: no signal fired within %s", spec.Detection.Timeout)
	}
	d.mark(ledger.Detected, det.At, "signal "+firstFailingV0(det.Results), det.Detail)

	if d.st.Mode == drills.ModeGameday {
		if err := d.humans(pctx); err != nil {
			return err
		}
	} else {
		d.mark(ledger.Engaged, det.At, "automation", "automated mode engages on detection")
		d.mark(ledger.Diagnosed, det.At, "automation", "automated mode runs the runbook for the scenario")
	}

	d.phase(ctx, "mitigate")
	for i, st := range spec.Mitigation.Steps {
		r, err := d.runStep(pctx, "Mitigate: "+st.Name, st)
		if err != nil {
			return d.phaseErr("mitigate", err)
		}
		if i == 0 && r.StartedAt > 0 {
			lat := r.StartedAt - det.At
			d.rec.MitigationLatencyMs = &lat
		}
	}
	var mit activities.WaitResult
	if err := d.wait(pctx, "Mitigated: SLO holds again", activities.WaitInput{
		ChecksInput: activities.ChecksInput{Signals: d.signals(), Checks: spec.Mitigation.SLO},
		Until:       activities.UntilAllPass, Interval: spec.Detection.Interval.D(), Timeout: spec.Mitigation.Timeout.D(),
	}, &mit); err != nil {
		return d.phaseErr("mitigate", err)
	}
	if !mit.Met {
		d.finding("high", "customer impact did not stop within "+spec.Mitigation.Timeout.String(), mit.Detail)
		return fmt.Errorf("mitigation: the SLO did not hold within %s: %s", spec.Mitigation.Timeout, mit.Detail)
	}
	d.mark(ledger.Mitigated, mit.At, "SLO observed", mit.Detail)

	return d.recover(ctx, pctx)
}

// recover waits until the recovery checks have held for their hold time.
func (d *legacyDrill) recover(ctx, pctx workflow.Context) error {
	spec := d.spec
	d.phase(ctx, "recover")
	var rec activities.WaitResult
	if err := d.wait(pctx, "Recovered: checks hold for "+spec.Recovery.HoldFor.String(), activities.WaitInput{
		ChecksInput: activities.ChecksInput{Signals: d.signals(), Checks: spec.Recovery.Checks},
		Until:       activities.UntilAllPass, Interval: spec.Recovery.Interval.D(),
		HoldFor: spec.Recovery.HoldFor.D(), Timeout: spec.Recovery.Timeout.D(),
	}, &rec); err != nil {
		return d.phaseErr("recover", err)
	}
	if !rec.Met {
		d.finding("high", "steady state did not return within "+spec.Recovery.Timeout.String(), rec.Detail)
		return fmt.Errorf("recovery: timed out after %s: %s", spec.Recovery.Timeout, rec.Detail)
	}
	d.mark(ledger.Recovered, rec.At, "checks held "+spec.Recovery.HoldFor.String(), rec.Detail)
	return nil
}

// collectWorkload waits (bounded) for the workload's figures: RTO from the
// fault to the first successful write after it, RPO as acknowledged writes
// missing.
func (d *legacyDrill) collectWorkload(ctx workflow.Context, f workflow.Future) {
	var r activities.WorkloadResult
	wctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	ok, _ := workflow.AwaitWithTimeout(wctx, 2*time.Minute, f.IsReady)
	if !ok {
		d.finding("medium", "the database workload did not finish; RTO/RPO not measured", "")
		return
	}
	if err := f.Get(ctx, &r); err != nil {
		d.finding("medium", "the database workload failed; RTO/RPO not measured", err.Error())
		return
	}
	d.event(workflow.Now(ctx).UnixMilli(), "workload", fmt.Sprintf("%d writes acknowledged, %d missing: %s", r.Acked, r.Missing, r.Detail))
	rpo := r.Missing
	d.rec.RPO = &rpo
	if t0, ok := d.rec.MarkAt(ledger.Injected); ok && r.RecoveredAt > 0 {
		rto := r.RecoveredAt - t0
		d.rec.RTOMs = &rto
	}
	if r.Missing > 0 {
		d.finding("high", fmt.Sprintf("%d acknowledged writes were lost (RPO > 0)", r.Missing), r.Detail)
	}
}

// deployDrill runs a deploy as the fault: the deploy's analysis is the
// detection and its automatic rollback the mitigation. Its figures are
// scored like any other drill, against the 2-minute rollback rule.
func (d *legacyDrill) deployDrill(ctx, pctx workflow.Context, st drills.Step) error {
	ds := st.Deploy
	if ds.Resolved == nil {
		return temporal.NewNonRetryableApplicationError("deploy step "+st.Name+" has no resolved deploy spec", "BadStep", nil)
	}
	cwo := workflow.ChildWorkflowOptions{
		WorkflowID:    d.rec.ID + "/deploy/" + ds.Version,
		StaticSummary: fmt.Sprintf("Drill %s: deploy %s %s and expect a rollback", d.spec.Name, ds.Resolved.Service, ds.Version),
		// If the drill goes away, the deploy is asked to stop: its own
		// rollback puts traffic back on stable.
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
	}
	var dr DeployResult
	err := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(pctx, cwo), Deploy,
		DeployInput{Spec: *ds.Resolved, Version: ds.Version, RequestedBy: "drill " + d.rec.ID}).Get(pctx, &dr)
	if err != nil {
		return d.phaseErr("inject", err)
	}
	if len(dr.Steps) == 0 {
		return fmt.Errorf("deploy %s never shifted traffic: %s", ds.Version, dr.Reason)
	}
	d.mark(ledger.Injected, dr.Steps[0].StartedAt, "canary "+ds.Version+" took traffic", "")
	if dr.Outcome != OutcomeRolledBack || dr.TimeToRollbackMs == nil {
		d.finding("high", fmt.Sprintf("the bad version %s was not rolled back on its own (outcome %s)", ds.Version, dr.Outcome), dr.Reason)
		return fmt.Errorf("deploy of %s ended %s, not rolled back", ds.Version, dr.Outcome)
	}
	d.mark(ledger.Detected, dr.FailedSampleAt, "deploy analysis", dr.Reason)
	d.mark(ledger.Engaged, dr.FailedSampleAt, "automation", "the deploy's automatic rollback")
	d.mark(ledger.Diagnosed, dr.FailedSampleAt, "automation", dr.Reason)
	d.mark(ledger.Mitigated, dr.RollbackAt, "traffic back on stable", fmt.Sprintf("time to rollback %dms", *dr.TimeToRollbackMs))
	d.rec.TimeToRollbackMs = dr.TimeToRollbackMs
	lat := *dr.TimeToRollbackMs
	d.rec.MitigationLatencyMs = &lat
	if *dr.TimeToRollbackMs > (2 * time.Minute).Milliseconds() {
		d.finding("high", fmt.Sprintf("rollback took %s, over the 2-minute rule", time.Duration(*dr.TimeToRollbackMs)*time.Millisecond), "")
	}
	d.event(dr.RollbackAt, "step", fmt.Sprintf("deploy %s rolled back: %s", ds.Version, dr.Reason))
	return d.recover(ctx, pctx)
}

// beatForV0 is the heartbeat timeout of an activity that heartbeats once per
// sample: long enough for a slow sample, short enough to notice a dead
// worker.
func beatForV0(interval time.Duration) time.Duration {
	return max(10*time.Second, 2*interval+time.Second)
}

type preflightErrorV0 struct{ msg string }

func (e preflightErrorV0) Error() string { return e.msg }

func firstFailingV0(rs []activities.CheckResult) string {
	var best *activities.CheckResult
	for i := range rs {
		if !rs[i].OK && (best == nil || rs[i].At < best.At) {
			best = &rs[i]
		}
	}
	if best == nil {
		return ""
	}
	return best.Name
}

// phaseErr turns an error in a phase into errAbortedV0 when the drill was
// aborted (the cancellation is how the abort reached the phase).
func (d *legacyDrill) phaseErr(phase string, err error) error {
	if d.aborted != "" {
		return errAbortedV0
	}
	if temporal.IsCanceledError(err) {
		return err // the drill itself was cancelled; finish says so
	}
	return fmt.Errorf("%s: %s", phase, briefV0(err))
}

// brief is the message of the innermost application error: Temporal's
// error chain repeats the cause at every level, which reads badly in a
// report.
func briefV0(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "timed out (" + timeout.TimeoutType().String() + ")"
	}
	return err.Error()
}

// humans waits for people to engage and diagnose (gameday mode).
func (d *legacyDrill) humans(ctx workflow.Context) error {
	d.phase(ctx, "engage")
	d.st.Waiting = "ack: drillship drill ack " + d.rec.ID
	if err := workflow.Await(ctx, func() bool { return d.acked != nil || d.aborted != "" }); err != nil || d.aborted != "" {
		return errAbortedV0
	}
	d.mark(ledger.Engaged, d.ackAt, "ack by "+whoOfV0(*d.acked), d.acked.Reason)
	d.phase(ctx, "diagnose")
	d.st.Waiting = "diagnosis: drillship drill diagnose " + d.rec.ID + " --note '...'"
	if err := workflow.Await(ctx, func() bool { return d.diagnosed != nil || d.aborted != "" }); err != nil || d.aborted != "" {
		return errAbortedV0
	}
	d.mark(ledger.Diagnosed, d.diagAt, "diagnosis by "+whoOfV0(*d.diagnosed), d.diagnosed.Reason)
	d.st.Waiting = "mitigation by people; the mark is set when the SLO is observed holding"
	return nil
}

func (d *legacyDrill) startGuardrails(ctx, pctx workflow.Context) {
	g := d.spec.Guardrails
	d.st.Guardrails.Active = true
	workflow.Go(pctx, func(gctx workflow.Context) {
		timer := workflow.NewTimerWithOptions(gctx, g.MaxDuration.D(), workflow.TimerOptions{Summary: "Guardrail: max duration " + g.MaxDuration.String()})
		s := workflow.NewSelector(gctx)
		s.AddFuture(timer, func(f workflow.Future) {
			if f.Get(gctx, nil) == nil {
				d.st.Guardrails.Tripped = "maxDuration"
				d.finding("high", "guardrail tripped: the drill ran past its maximum duration of "+g.MaxDuration.String(), "")
				d.abort(ctx, "guardrail: maximum duration "+g.MaxDuration.String()+" reached")
			}
		})
		if len(g.Checks) > 0 {
			ao := optsDrillV0("Guardrails", 0)
			ao.StartToCloseTimeout = g.MaxDuration.D() + time.Hour
			ao.HeartbeatTimeout = beatForV0(g.Interval.D())
			f := workflow.ExecuteActivity(workflow.WithActivityOptions(gctx, ao), d.act.Guard, activities.WaitInput{
				ChecksInput: activities.ChecksInput{Signals: d.signals(), Checks: g.Checks},
				Interval:    g.Interval.D(),
			})
			s.AddFuture(f, func(f workflow.Future) {
				var r activities.GuardResult
				if err := f.Get(gctx, &r); err == nil && r.Tripped {
					d.st.Guardrails.Tripped, d.st.Guardrails.Detail = r.Name, r.Detail
					d.event(r.At, "guardrail", r.Name+" tripped: "+r.Detail)
					d.finding("high", "guardrail tripped: "+r.Name, r.Detail)
					d.abort(ctx, "guardrail "+r.Name+" tripped: "+r.Detail)
				}
			})
		}
		s.Select(gctx)
	})
}

func (d *legacyDrill) execAct(ctx workflow.Context, summary string, fn, arg, out any) error {
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, optsDrillV0(summary, 5)), fn, arg).Get(ctx, out)
}

func (d *legacyDrill) wait(ctx workflow.Context, summary string, in activities.WaitInput, out *activities.WaitResult) error {
	ao := optsDrillV0(summary, 0)
	ao.StartToCloseTimeout = in.Timeout + in.HoldFor + time.Minute
	ao.HeartbeatTimeout = beatForV0(in.Interval)
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ao), d.act.WaitFor, in).Get(ctx, out)
	// Keep the readings of the drill's main SLI for the report's chart.
	if len(d.spec.Mitigation.SLO) > 0 {
		name := d.spec.Mitigation.SLO[0].Name
		d.rec.SLIName = name
		d.rec.SLI = append(d.rec.SLI, out.Series[name]...)
	}
	return err
}

// runStep carries out one mitigation or restore step.
func (d *legacyDrill) runStep(ctx workflow.Context, summary string, st drills.Step) (activities.ActionResult, error) {
	spec := d.spec
	var r activities.ActionResult
	var err error
	start := workflow.Now(ctx).UnixMilli()
	switch {
	case st.Failover != nil:
		cwo := workflow.ChildWorkflowOptions{
			WorkflowID:    fmt.Sprintf("%s/failover/%d", d.rec.ID, len(d.rec.Events)),
			StaticSummary: summary,
		}
		var fr FailoverResult
		err = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, cwo), Failover, FailoverInput{
			Traffic: spec.Target(activities.CapTraffic, st.Target), Signals: d.signals(),
			Weights: st.Failover.Weights, Verify: st.Failover.Verify, Timeout: st.Failover.Timeout.D(),
			Interval: spec.Detection.Interval.D(),
		}).Get(ctx, &fr)
		r = activities.ActionResult{StartedAt: fr.StartedAt, EndedAt: fr.VerifiedAt, Attempt: fr.Attempts,
			Output: activities.Output{Detail: "weights " + activities.FormatWeights(fr.Weights) + " " + fr.Detail}}
		if r.StartedAt == 0 {
			r.StartedAt = start
		}
	case len(st.Weights) > 0:
		var wr activities.WeightsResult
		err = d.execAct(ctx, summary, d.act.SetWeights, activities.WeightsInput{Target: spec.Target(activities.CapTraffic, st.Target), Weights: st.Weights}, &wr)
		r = activities.ActionResult{StartedAt: start, EndedAt: wr.At, Attempt: wr.Attempt, Output: activities.Output{Detail: "weights " + activities.FormatWeights(wr.Weights)}}
	case st.Action != nil:
		err = d.execAct(ctx, summary, d.act.RunAction, activities.ActionInput{Target: spec.Target(activities.CapRunner, st.Target), Action: *st.Action}, &r)
	case st.Database != nil:
		// Promotions and switchovers take minutes (an Aurora global
		// switchover can take several); providers wait with the SDK's
		// waiters, bounded by their own maxWait.
		ao := optsDrillV0(summary, 3)
		ao.StartToCloseTimeout = 30 * time.Minute
		err = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ao), d.act.DBOp,
			activities.DBInput{Target: spec.Target(activities.CapDatabase, st.Target), Op: st.Database.Op, Node: st.Database.Node}).Get(ctx, &r)
	default:
		err = temporal.NewNonRetryableApplicationError("step "+st.Name+" has nothing to do", "BadStep", nil)
	}
	now := workflow.Now(ctx).UnixMilli()
	if err != nil {
		d.event(now, "step", st.Name+" failed: "+err.Error())
		return r, err
	}
	if r.Attempt > 1 {
		d.finding("medium", fmt.Sprintf("step %q needed %d attempts", st.Name, r.Attempt), r.Output.Detail)
	}
	d.event(now, "step", st.Name+": "+r.Output.Detail)
	return r, nil
}

// restore stops every fault, runs the restore steps, puts load back, and
// checks the steady state again. It is idempotent: each step reads before
// it writes, so running it twice changes nothing the second time.
func (d *legacyDrill) restore(ctx workflow.Context) {
	if len(d.injected) == 0 && !d.loadChanged {
		d.rec.Restored = true // nothing was changed: mitigation only follows an injection
		return
	}
	d.phase(ctx, "restoring")
	d.st.Guardrails.Active = false
	ok := true
	ro := optsDrillV0("", 10)
	ro.RetryPolicy.MaximumInterval = 5 * time.Second
	for i := len(d.injected) - 1; i >= 0; i-- {
		f := d.injected[i]
		ro.Summary = "Restore: stop " + f.fault.Kind
		var fr activities.FaultResult
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ro), d.act.StopFault,
			activities.FaultInput{Target: f.target, Fault: f.fault, Handle: f.handle}).Get(ctx, &fr)
		if err != nil {
			ok = false
			d.finding("high", "restore could not stop fault "+f.fault.Kind+": manual action needed", err.Error())
			continue
		}
		if fr.Attempt > 1 {
			d.finding("medium", fmt.Sprintf("restore needed %d attempts to stop %s", fr.Attempt, f.fault.Kind), "")
		}
		d.event(fr.At, "restore", "stopped "+f.fault.Kind)
	}
	for _, st := range d.spec.Restore {
		if _, err := d.runStep(workflow.WithActivityOptions(ctx, ro), "Restore: "+st.Name, st); err != nil {
			ok = false
			d.finding("high", "restore step "+st.Name+" failed: manual action needed", err.Error())
		}
	}
	if d.loadChanged {
		var ar activities.ActionResult
		_ = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ro), d.act.RunAction, activities.ActionInput{
			Target: d.spec.Target(activities.CapRunner, nil),
			Action: activities.Action{Name: "load", Params: map[string]string{"multiplier": "1"}},
		}).Get(ctx, &ar)
	}
	var ss activities.WaitResult
	err := d.wait(ctx, "Restored: steady state holds", activities.WaitInput{
		ChecksInput: activities.ChecksInput{Signals: d.signals(), Checks: d.spec.SteadyState},
		Until:       activities.UntilAllPass, Interval: d.spec.Recovery.Interval.D(),
		HoldFor: d.spec.Recovery.HoldFor.D(), Timeout: d.spec.Recovery.Timeout.D(),
	}, &ss)
	switch {
	case err != nil:
		ok = false
		d.finding("high", "steady state could not be read after restore", err.Error())
	case !ss.Met:
		ok = false
		d.finding("high", "steady state did not return after restore within "+d.spec.Recovery.Timeout.String(), ss.Detail)
	default:
		if t, has := d.rec.MarkAt(ledger.Injected); has && ss.Samples > 3 && ss.At-t > 0 {
			if slow := ss.Samples; slow > 10 {
				d.finding("low", fmt.Sprintf("steady state was slow to return after restore (%d samples)", slow), ss.Detail)
			}
		}
		if len(d.injected) > 0 {
			d.mark(ledger.Restored, ss.At, "steady state observed after restore", ss.Detail)
		}
	}
	d.rec.Restored = ok
}

func (d *legacyDrill) finish(ctx workflow.Context, err error) {
	var pre preflightErrorV0
	switch {
	case errors.As(err, &pre):
		d.rec.Outcome, d.rec.Reason = ledger.OutcomeAborted, "preflight refused: "+pre.msg
		d.finding("high", "preflight refused to inject", pre.msg)
	case d.aborted != "":
		d.rec.Outcome, d.rec.Reason = ledger.OutcomeAborted, d.aborted
	case temporal.IsCanceledError(err):
		d.rec.Outcome, d.rec.Reason = ledger.OutcomeAborted, "the drill workflow was cancelled"
	case err != nil:
		d.rec.Outcome, d.rec.Reason = ledger.OutcomeFailed, err.Error()
	default:
		d.rec.Outcome = ledger.OutcomeRecovered
	}
	d.rec.EndedAt = workflow.Now(ctx).UnixMilli()
	d.rec.Scores = ledger.ScoreMarks(d.rec.Marks, d.spec.Targets)
	d.rec.Findings = append(d.rec.Findings, ledger.ScoreFindings(d.rec.Scores)...)
	if d.in.ReportDir != "" {
		ao := optsDrillV0("Write reports to "+d.in.ReportDir, 5)
		if werr := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ao), d.act.WriteReport,
			activities.ReportInput{Dir: d.in.ReportDir, Record: d.rec}).Get(ctx, nil); werr != nil {
			workflow.GetLogger(ctx).Error("writing reports failed", "error", werr)
		}
	}
	d.st.Outcome = d.rec.Outcome
	d.phase(ctx, "done")
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrOutcome.ValueSet(d.rec.Outcome))
}

func optsDrillV0(summary string, maxAttempts int32) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    200 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
			MaximumAttempts:    maxAttempts,
		},
	}
}

func reasonSuffixV0(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}
