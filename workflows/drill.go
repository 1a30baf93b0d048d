package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/lease"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/notify"
	"github.com/drillship/drillship/policy"
)

// Drill update and query names.
const (
	UpdateAck       = "ack"
	UpdateDiagnose  = "diagnose"
	UpdateMitigated = "mitigated"
	// UpdateAbort and UpdateApprove are shared with deploys.
)

// DrillInput starts a drill.
type DrillInput struct {
	Spec drills.Spec `json:"spec"`
	// Mode overrides the spec's mitigation mode.
	Mode        string `json:"mode,omitempty"`
	RequestedBy string `json:"requestedBy,omitempty"`
	// ReportDir: where the worker writes the reports, so that they outlive
	// Temporal's retention. Empty writes none.
	ReportDir string `json:"reportDir,omitempty"`
	// Policy: a drill freeze in effect refuses the drill (gates.go).
	Policy *policy.Policy `json:"policy,omitempty"`
}

// DrillID is the workflow id of a drill started at t.
func DrillID(name string, t time.Time) string {
	return "drill/" + name + "/" + t.UTC().Format("2006-01-02T15-04-05Z")
}

// GuardState is what the guardrails are doing.
type GuardState struct {
	Active  bool   `json:"active"`
	Tripped string `json:"tripped,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// DrillState is what the `state` query answers.
type DrillState struct {
	Name       string         `json:"name"`
	Mode       string         `json:"mode"`
	Phase      string         `json:"phase"`
	PhaseStart int64          `json:"phaseStart"`
	Marks      []ledger.Mark  `json:"marks"`
	Targets    ledger.Targets `json:"targets"`
	Guardrails GuardState     `json:"guardrails"`
	Waiting    string         `json:"waiting,omitempty"`
	Outcome    string         `json:"outcome,omitempty"`
}

type drill struct {
	in   DrillInput
	spec drills.Spec
	rec  ledger.Record
	st   DrillState
	act  *activities.Activities
	lact *lease.Activities

	aborted     string // why the drill stops early; set by guardrail, timer, person
	cancelPhase workflow.CancelFunc
	acked       *Command
	ackAt       int64
	diagnosed   *Command
	diagAt      int64
	approved    bool
	ended       bool // the phases are over (restore and finish follow)

	// What the drill changed, for restore: faults (started or attempted),
	// load, a child deploy, and the world as preflight saw it.
	injected    []injected
	loadChanged bool
	deployed    bool
	snapshot    *activities.Snapshot
	leaseTried  bool
	leaseKeys   []string

	// The guardrail and workload activities run beside the phases; both are
	// cancelled and waited for before restore, so that a finished drill has
	// no pending activity and the workload's writer has stopped before rows
	// are counted.
	guardCancel    workflow.CancelFunc
	guardStopAt    int64 // when the drill stopped the guardrails (Unix ms)
	guardDone      bool
	workload       workflow.Future
	workloadCancel workflow.CancelFunc

	restoreFailed []string // why the environment is not known to be back

	note        *notify.Sender      // notifications (notify.go); nil: none sent
	stopOverdue workflow.CancelFunc // ends the phase-overdue timers
}

type injected struct {
	name    string
	target  activities.Target
	fault   activities.Fault
	handle  string
	started bool // the inject activity returned: the fault was in effect
}

var errAborted = errors.New("drill aborted")

// refusal is why a drill did not start its faults (lease held, steady state
// not holding, no snapshot).
type refusal struct{ msg string }

func (e refusal) Error() string { return e.msg }

// Drill runs one drill: preflight, inject, detect, engage, diagnose,
// mitigate, recover, then always restore. It returns the record; a drill
// that did not recover and restore ends failed (see outcome.go) with the
// record as the error's details.
func Drill(ctx workflow.Context, in DrillInput) (ledger.Record, error) {
	// Runs recorded before drills told the truth replay through the frozen
	// copy; the marker makes every new run take the path below.
	if workflow.GetVersion(ctx, "drill-truth", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return drillV0(ctx, in)
	}
	d := &drill{in: in, spec: in.Spec}
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
	if in.Policy != nil {
		d.note = notifier(ctx, in.Policy.Notifications) // versioned: notify.go
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrKind.ValueSet("drill"), AttrScenario.ValueSet(in.Spec.Name),
		AttrEnvironment.ValueSet(in.Spec.Environment))

	// Everything after the phases runs in a context that a cancellation of
	// the drill does not reach: the side activities are stopped and waited
	// for, restore runs, the lease is released.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	err := drillFrozen(ctx, in) // release policy: nil without one (versioned, gates.go)
	if err == nil {
		err = d.run(ctx, dctx)
	}
	d.ended = true // from here on, commands are refused: the outcome is settled
	d.stopGuardrails(dctx)
	d.stopWorkload(dctx, ctx.Err() != nil)
	d.restore(dctx)
	d.releaseLease(dctx)
	return d.finish(dctx, ctx.Err() != nil, err)
}

func (d *drill) register(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (DrillState, error) {
		s := d.st
		s.Marks = d.rec.Marks
		return s, nil
	}); err != nil {
		return err
	}
	running := func(Command) error {
		if d.aborted != "" {
			return fmt.Errorf("the drill is already stopping: %s", d.aborted)
		}
		if d.ended {
			return fmt.Errorf("the drill's phases are over (%s)", d.st.Phase)
		}
		return nil
	}
	type handler struct {
		name     string
		validate func(Command) error
		apply    func(workflow.Context, Command)
	}
	hs := []handler{
		{UpdateAck, func(c Command) error {
			if d.acked != nil {
				return fmt.Errorf("already acknowledged by %s at %s; the engagement mark stays, nothing changed",
					whoOf(*d.acked), time.UnixMilli(d.ackAt).UTC().Format(time.TimeOnly))
			}
			return running(c)
		}, func(ctx workflow.Context, c Command) {
			d.acked, d.ackAt = &c, workflow.Now(ctx).UnixMilli()
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
			d.abort(ctx, "aborted by "+whoOf(c)+reasonSuffix(c.Reason))
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

func whoOf(c Command) string {
	if c.Who == "" {
		return "unknown"
	}
	return c.Who
}

func (d *drill) audit(ctx workflow.Context, action string, c Command) {
	now := workflow.Now(ctx).UnixMilli()
	d.rec.Audit = append(d.rec.Audit, ledger.Audit{Action: action, Who: whoOf(c), Reason: c.Reason, At: now})
	d.event(now, "audit", action+" by "+whoOf(c)+reasonSuffix(c.Reason))
	workflow.GetLogger(ctx).Warn("audit", "action", action, "who", whoOf(c), "reason", c.Reason)
}

func (d *drill) event(at int64, kind, detail string) {
	d.rec.Events = append(d.rec.Events, ledger.Event{At: at, Kind: kind, Detail: detail})
}

func (d *drill) finding(sev, title, detail string) {
	d.rec.Findings = append(d.rec.Findings, ledger.Finding{Severity: sev, Title: title, Detail: detail})
}

// abort ends the drill early: the current phase is cancelled and restore
// runs.
func (d *drill) abort(ctx workflow.Context, why string) {
	if d.aborted != "" {
		return
	}
	d.aborted = why
	d.event(workflow.Now(ctx).UnixMilli(), "abort", why)
	if d.cancelPhase != nil {
		d.cancelPhase()
	}
}

// mark records a phase boundary; delayedMs is unobserved time (a worker
// crash) before the observation, by which the mark may be late.
func (d *drill) mark(name string, at int64, source, note string, delayedMs int64) {
	// Marks never go back in time: a person's ack sent before the
	// automation noticed is counted from the detection.
	for _, m := range d.rec.Marks {
		if m.At > at {
			note = fmt.Sprintf("%s (observed %d, before %s; counted from it)", note, at, m.Name)
			at = m.At
		}
	}
	d.rec.Marks = append(d.rec.Marks, ledger.Mark{Name: name, At: at, Source: source, Note: note, DelayedMs: delayedMs})
}

func (d *drill) phase(ctx workflow.Context, p string) {
	d.st.Phase = p
	d.st.PhaseStart = workflow.Now(ctx).UnixMilli()
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** — drill %s (%s)", p, d.spec.Name, d.st.Mode))
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrPhase.ValueSet(p))
	d.notePhase(ctx, p)
}

func (d *drill) signals() activities.Target {
	return d.spec.Target(activities.CapSignals, nil)
}

func (d *drill) hasMark(name string) bool {
	_, ok := d.rec.MarkAt(name)
	return ok
}

// trafficTargets are the traffic targets the drill's weight and failover
// steps shift: what the preflight snapshot covers.
func (d *drill) trafficTargets() []activities.Target {
	var out []activities.Target
	seen := map[string]bool{}
	for _, steps := range [][]drills.Step{d.spec.Inject, d.spec.Mitigation.Steps, d.spec.Restore} {
		for _, st := range steps {
			if len(st.Weights) == 0 && st.Failover == nil {
				continue
			}
			t := d.spec.Target(activities.CapTraffic, st.Target)
			b, _ := json.Marshal(t) // map keys sorted: a stable identity
			if !seen[string(b)] {
				seen[string(b)] = true
				out = append(out, t)
			}
		}
	}
	return out
}

// preflight takes the lease, checks the steady state on conclusive data and
// takes the snapshot restore puts back. Any refusal means nothing was
// changed.
func (d *drill) preflight(ctx workflow.Context) error {
	spec := d.spec
	d.phase(ctx, "preflight")
	d.leaseKeys = lease.DrillKeys(spec)
	d.leaseTried = true
	var lr lease.AcquireResult
	if err := d.execAct(ctx, "Lease: "+strings.Join(d.leaseKeys, ", "), d.lact.AcquireLease, lease.AcquireInput{
		Keys: d.leaseKeys, Holder: d.rec.ID, What: "drill " + spec.Name,
	}, &lr); err != nil {
		return refusal{"the lease could not be taken, so nothing was injected: " + brief(err)}
	}
	if !lr.Granted {
		what := lr.HeldWhat
		if what == "" {
			what = "another run"
		}
		return refusal{fmt.Sprintf("%s is held by %s (%s), so nothing was injected", lr.Key, lr.HeldBy, what)}
	}
	if r := d.providerChecks(ctx); r != nil {
		return r
	}
	var pre []activities.CheckResult
	if err := d.execAct(ctx, "Preflight: steady state holds", d.act.Evaluate,
		activities.ChecksInput{Signals: d.signals(), Checks: spec.SteadyState}, &pre); err != nil {
		return refusal{"the steady state could not be read, so nothing was injected: " + brief(err)}
	}
	for _, r := range pre {
		switch {
		case r.Inconclusive:
			return refusal{fmt.Sprintf("the steady state could not be confirmed, so nothing was injected: %s is inconclusive (%s)", r.Name, r.Detail)}
		case !r.OK:
			return refusal{fmt.Sprintf("steady state does not hold before injection, so nothing was injected: %s is %.4g (%s)", r.Name, r.Value, r.Detail)}
		}
	}
	in := activities.SnapshotInput{Traffic: d.trafficTargets()}
	if spec.Load > 0 && spec.Providers.Runner != nil {
		t := spec.Target(activities.CapRunner, nil)
		in.Runner = &t
	}
	var snap activities.Snapshot
	if err := d.execAct(ctx, "Preflight: snapshot of weights and load", d.act.TakeSnapshot, in, &snap); err != nil {
		return refusal{"the preflight snapshot could not be taken, so nothing was injected: " + brief(err)}
	}
	d.snapshot = &snap
	d.event(snap.At, "snapshot", describeSnapshot(snap))
	return nil
}

// providerChecks runs the providers' own checks before anything is
// injected (the worker may patch the nodes a zone fault cordons, a
// PodDisruptionBudget exists). A binding failure refuses the drill; the
// others are findings. Runs started before "preflight" make no such call.
func (d *drill) providerChecks(ctx workflow.Context) error {
	if workflow.GetVersion(ctx, "preflight", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	var r activities.PreflightResult
	if err := d.execAct(ctx, "Preflight: provider checks", d.act.Preflight, activities.PreflightInput{Uses: d.spec.Uses()}, &r); err != nil {
		return refusal{"the provider checks could not run, so nothing was injected: " + brief(err)}
	}
	var refused []string
	for _, f := range r.Findings {
		switch {
		case f.OK:
			d.event(workflow.Now(ctx).UnixMilli(), "preflight", f.Check+" ok: "+f.Detail)
		case f.Refuse:
			refused = append(refused, f.Detail)
		default:
			d.finding("medium", "Preflight: "+f.Check, f.Detail)
		}
	}
	if len(refused) > 0 {
		return refusal{"preflight refused, so nothing was injected: " + strings.Join(refused, "; ")}
	}
	return nil
}

func describeSnapshot(s activities.Snapshot) string {
	parts := []string{}
	for _, tw := range s.Weights {
		parts = append(parts, tw.Target.Provider+" "+activities.FormatWeights(tw.Weights))
	}
	if s.Load != nil {
		parts = append(parts, "load "+strconv.FormatFloat(*s.Load, 'g', -1, 64)+"x")
	}
	if len(parts) == 0 {
		return "preflight snapshot: nothing to put back besides faults"
	}
	return "preflight snapshot: " + strings.Join(parts, ", ")
}

func (d *drill) run(ctx, dctx workflow.Context) error {
	spec := d.spec
	if err := d.preflight(ctx); err != nil {
		return err
	}
	if d.aborted != "" { // aborted while preflight ran: nothing injected yet
		return errAborted
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
			return errAborted
		}
	}

	// From here on everything runs under the guardrails.
	pctx, cancel := workflow.WithCancel(ctx)
	d.cancelPhase = cancel
	defer cancel()
	d.startGuardrails(dctx)

	if spec.Load > 0 && spec.Providers.Runner != nil {
		d.loadChanged = true
		var ar activities.ActionResult
		if err := d.execAct(pctx, fmt.Sprintf("Load at %gx", spec.Load), d.act.RunAction, activities.ActionInput{
			Target: spec.Target(activities.CapRunner, nil),
			Action: activities.Action{Name: "load", Key: d.rec.ID + "/load",
				Params: map[string]string{"multiplier": strconv.FormatFloat(spec.Load, 'g', -1, 64)}},
		}, &ar); err != nil {
			return d.phaseErr("load", err)
		}
	}

	if wl := spec.Workload; wl != nil {
		ao := opts("Workload: numbered writes for RTO/RPO", 3)
		ao.StartToCloseTimeout = spec.Guardrails.MaxDuration.D() + time.Minute
		ao.HeartbeatTimeout = 30 * time.Second
		ao.WaitForCancellation = true
		wctx, wcancel := workflow.WithCancel(dctx)
		d.workloadCancel = wcancel
		d.workload = workflow.ExecuteActivity(workflow.WithActivityOptions(wctx, ao), d.act.Workload, activities.WorkloadInput{
			Target: spec.Target(activities.CapDatabase, nil), Interval: wl.Interval.D(), HoldFor: wl.HoldFor.D(),
		})
	}

	d.phase(ctx, "inject")
	var t0 int64
	for i, st := range spec.Inject {
		if st.Deploy != nil {
			// The deploy's analysis and rollback set the marks up to
			// mitigated; later inject steps and phases still run.
			if err := d.deployStep(pctx, st); err != nil {
				return err
			}
			continue
		}
		f := *st.Fault
		f.Owner = d.rec.ID
		in := activities.FaultInput{Target: d.spec.Target(activities.CapFaults, st.Target), Fault: f}
		// Recorded before the call: if it fails half-way, restore still
		// looks for it (by owner and kind; a handle the error carries helps).
		d.injected = append(d.injected, injected{name: st.Name, target: in.Target, fault: in.Fault})
		var fr activities.FaultResult
		err := d.execAct(pctx, "Inject: "+st.Name, d.act.InjectFault, in, &fr)
		last := &d.injected[len(d.injected)-1]
		if err != nil {
			last.handle = activities.HandleOf(err)
			// The first fault refused at once (no such zone, a selector
			// matching nothing) with no handle: by the Faults contract
			// nothing took effect, so the drill did not run rather than
			// "not recover". Restore still runs and checks.
			if i == 0 && last.handle == "" && isNonRetryable(err) && !d.aborting() &&
				workflow.GetVersion(ctx, "inject-refusal", workflow.DefaultVersion, 1) == 1 {
				return refusal{"the fault " + st.Name + " could not be injected, and nothing took effect: " + brief(err)}
			}
			return d.phaseErr("inject", err)
		}
		last.handle, last.started = fr.Handle, true
		t0 = fr.At
		d.event(fr.At, "step", "injected: "+st.Name)
	}
	if !d.hasMark(ledger.Injected) {
		d.mark(ledger.Injected, t0, "fault activity returned", "", 0)
	}

	var detAt int64
	if !d.hasMark(ledger.Detected) {
		d.phase(ctx, "detect")
		if len(spec.Detection.Signals) == 0 {
			return errors.New("detection: no signal to watch and nothing detected the fault")
		}
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
		detAt = det.At
		d.mark(ledger.Detected, det.At, "signal "+firstFailing(det.Results), det.Detail, delayOf(det.Gaps, det.At))
	} else {
		detAt, _ = d.rec.MarkAt(ledger.Detected)
	}

	switch {
	case d.hasMark(ledger.Engaged) && d.hasMark(ledger.Diagnosed):
	case d.st.Mode == drills.ModeGameday:
		if err := d.humans(pctx); err != nil {
			return err
		}
	default:
		if spec.Mitigation.SelfHealing {
			d.mark(ledger.Engaged, detAt, "platform", "self-healing: the platform engages on its own", 0)
			d.mark(ledger.Diagnosed, detAt, "platform", "self-healing: no runbook steps; the SLO is watched", 0)
		} else {
			d.mark(ledger.Engaged, detAt, "automation", "automated mode engages on detection", 0)
			d.mark(ledger.Diagnosed, detAt, "automation", "automated mode runs the runbook for the scenario", 0)
		}
	}

	d.phase(ctx, "mitigate")
	var lastStep string
	var lastStepStart, lastStepAt int64
	for i, st := range spec.Mitigation.Steps {
		r, err := d.runStep(pctx, "Mitigate: "+st.Name, st)
		if err != nil {
			return d.phaseErr("mitigate", err)
		}
		if i == 0 && r.StartedAt > 0 && d.rec.MitigationLatencyMs == nil {
			lat := r.StartedAt - detAt
			d.rec.MitigationLatencyMs = &lat
		}
		lastStep, lastStepStart, lastStepAt = st.Name, r.StartedAt, r.EndedAt
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
	if !d.hasMark(ledger.Mitigated) {
		d.mark(ledger.Mitigated, mit.At, "SLO observed", mit.Detail, delayOf(mit.Gaps, mit.At))
		// How long the world took to obey the last step (a flag flip, a
		// shed): from the step's activity starting and returning to the
		// SLO observed.
		if lastStepStart > 0 && lastStepAt >= lastStepStart && mit.At >= lastStepAt {
			d.event(mit.At, "sli", fmt.Sprintf("%s%dms after the last mitigation step (%s) started, %dms after it ended",
				SLOAfterStep, mit.At-lastStepStart, lastStep, mit.At-lastStepAt))
		}
	}
	return d.recover(ctx, pctx)
}

// SLOAfterStep starts the ledger event that gives the time from the last
// mitigation step to the SLO holding again.
const SLOAfterStep = "SLO holds again "

// recover waits until the recovery checks have held for their hold time.
func (d *drill) recover(ctx, pctx workflow.Context) error {
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
	d.mark(ledger.Recovered, rec.At, "checks held "+spec.Recovery.HoldFor.String(), rec.Detail, delayOf(rec.Gaps, rec.At))
	return nil
}

// stopWorkload lets the database workload end on its own (bounded; not
// after an abort), else cancels it and waits until its writer has stopped,
// then records RTO and RPO.
func (d *drill) stopWorkload(ctx workflow.Context, cancelled bool) {
	f := d.workload
	if f == nil {
		return
	}
	if d.aborted == "" && !cancelled {
		_, _ = workflow.AwaitWithTimeout(ctx, 2*time.Minute, f.IsReady)
	}
	if !f.IsReady() {
		d.event(workflow.Now(ctx).UnixMilli(), "workload", "workload still writing: cancelled, waiting for it to stop")
		d.workloadCancel()
	}
	var r activities.WorkloadResult
	err := f.Get(ctx, &r)
	d.workloadCancel()
	switch {
	case temporal.IsCanceledError(err):
		d.finding("medium", "the database workload had not finished and was stopped; RTO/RPO not measured", "")
		return
	case err != nil:
		d.finding("medium", "the database workload failed; RTO/RPO not measured", brief(err))
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

// deployStep runs a deploy as the fault: the deploy's analysis is the
// detection and its automatic rollback the mitigation. Its figures are
// scored like any other drill, against the 2-minute rollback rule.
func (d *drill) deployStep(pctx workflow.Context, st drills.Step) error {
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
	d.deployed = true
	var dr DeployResult
	err := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(pctx, cwo), Deploy,
		DeployInput{Spec: *ds.Resolved, Version: ds.Version, RequestedBy: "drill " + d.rec.ID}).Get(pctx, &dr)
	// A deploy that did not promote ends failed, its result in the error.
	if err != nil && !RecordOf(err, &dr) {
		return d.phaseErr("inject", err)
	}
	if len(dr.Steps) == 0 {
		return fmt.Errorf("deploy %s never shifted traffic: %s", ds.Version, dr.Reason)
	}
	d.mark(ledger.Injected, dr.Steps[0].StartedAt, "canary "+ds.Version+" took traffic", "", 0)
	if dr.Outcome != OutcomeRolledBack || dr.TimeToRollbackMs == nil {
		d.finding("high", fmt.Sprintf("the bad version %s was not rolled back on its own (outcome %s)", ds.Version, dr.Outcome), dr.Reason)
		return fmt.Errorf("deploy of %s ended %s, not rolled back", ds.Version, dr.Outcome)
	}
	d.mark(ledger.Detected, dr.FailedSampleAt, "deploy analysis", dr.Reason, 0)
	d.mark(ledger.Engaged, dr.FailedSampleAt, "automation", "the deploy's automatic rollback", 0)
	d.mark(ledger.Diagnosed, dr.FailedSampleAt, "automation", dr.Reason, 0)
	d.mark(ledger.Mitigated, dr.RollbackAt, "traffic back on stable", fmt.Sprintf("time to rollback %dms", *dr.TimeToRollbackMs), 0)
	d.rec.TimeToRollbackMs = dr.TimeToRollbackMs
	lat := *dr.TimeToRollbackMs
	d.rec.MitigationLatencyMs = &lat
	if *dr.TimeToRollbackMs > (2 * time.Minute).Milliseconds() {
		d.finding("high", fmt.Sprintf("rollback took %s, over the 2-minute rule", time.Duration(*dr.TimeToRollbackMs)*time.Millisecond), "")
	}
	d.event(dr.RollbackAt, "step", fmt.Sprintf("deploy %s rolled back: %s", ds.Version, dr.Reason))
	return nil
}

// beatFor is the heartbeat timeout of an activity that heartbeats once per
// sample: long enough for a slow sample, short enough to notice a dead
// worker.
func beatFor(interval time.Duration) time.Duration {
	return max(10*time.Second, 2*interval+time.Second)
}

func firstFailing(rs []activities.CheckResult) string {
	var best *activities.CheckResult
	for i := range rs {
		if rs[i].Failed() && (best == nil || rs[i].At < best.At) {
			best = &rs[i]
		}
	}
	if best == nil {
		return ""
	}
	return best.Name
}

// aborting: a person or a guardrail ended the drill.
func (d *drill) aborting() bool { return d.aborted != "" }

// isNonRetryable: an activity error Temporal gave up on at once.
func isNonRetryable(err error) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.NonRetryable()
}

// phaseErr turns an error in a phase into errAborted when the drill was
// aborted (the cancellation is how the abort reached the phase).
func (d *drill) phaseErr(phase string, err error) error {
	if d.aborted != "" {
		return errAborted
	}
	if temporal.IsCanceledError(err) {
		return err // the drill itself was cancelled; finish says so
	}
	return fmt.Errorf("%s: %s", phase, brief(err))
}

// brief is the message of the innermost application error: Temporal's
// error chain repeats the cause at every level, which reads badly in a
// report.
func brief(err error) string {
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
func (d *drill) humans(ctx workflow.Context) error {
	d.phase(ctx, "engage")
	d.st.Waiting = "ack: drillship drill ack " + d.rec.ID
	if err := workflow.Await(ctx, func() bool { return d.acked != nil || d.aborted != "" }); err != nil || d.aborted != "" {
		return errAborted
	}
	d.mark(ledger.Engaged, d.ackAt, "ack by "+whoOf(*d.acked), d.acked.Reason, 0)
	d.phase(ctx, "diagnose")
	d.st.Waiting = "diagnosis: drillship drill diagnose " + d.rec.ID + " --note '...'"
	if err := workflow.Await(ctx, func() bool { return d.diagnosed != nil || d.aborted != "" }); err != nil || d.aborted != "" {
		return errAborted
	}
	d.mark(ledger.Diagnosed, d.diagAt, "diagnosis by "+whoOf(*d.diagnosed), d.diagnosed.Reason, 0)
	d.st.Waiting = "mitigation by people; the mark is set when the SLO is observed holding"
	return nil
}

// startGuardrails arms the maximum-duration timer and the guardrail checks.
// Both run in a context of their own (under dctx, which a cancellation of
// the drill does not reach) so that stopGuardrails can cancel them and wait
// for the guard activity to end.
func (d *drill) startGuardrails(dctx workflow.Context) {
	g := d.spec.Guardrails
	d.st.Guardrails.Active = true
	gctx, cancel := workflow.WithCancel(dctx)
	d.guardCancel = cancel
	workflow.Go(gctx, func(gctx workflow.Context) {
		timer := workflow.NewTimerWithOptions(gctx, g.MaxDuration.D(), workflow.TimerOptions{Summary: "Guardrail: max duration " + g.MaxDuration.String()})
		if timer.Get(gctx, nil) == nil {
			d.st.Guardrails.Tripped = "maxDuration"
			d.finding("high", "guardrail tripped: the drill ran past its maximum duration of "+g.MaxDuration.String(), "")
			d.abort(gctx, "guardrail: maximum duration "+g.MaxDuration.String()+" reached")
		}
	})
	if len(g.Checks) == 0 {
		d.guardDone = true
		return
	}
	ao := opts("Guardrails", 0)
	ao.StartToCloseTimeout = g.MaxDuration.D() + time.Hour
	ao.HeartbeatTimeout = beatFor(g.Interval.D())
	ao.WaitForCancellation = true
	startedAt := workflow.Now(dctx).UnixMilli()
	f := workflow.ExecuteActivity(workflow.WithActivityOptions(gctx, ao), d.act.Guard, activities.WaitInput{
		ChecksInput: activities.ChecksInput{Signals: d.signals(), Checks: g.Checks},
		Interval:    g.Interval.D(),
	})
	workflow.Go(dctx, func(c workflow.Context) {
		defer func() { d.guardDone = true }()
		var r activities.GuardResult
		err := f.Get(c, &r)
		var ce *temporal.CanceledError
		var te *temporal.TimeoutError
		switch {
		case err == nil:
		case errors.As(err, &ce) && ce.HasDetails():
			// A running guard acknowledges the cancellation with its result.
			// When its worker was gone, the server ends the attempt at the
			// heartbeat timeout instead, with the last heartbeat as the
			// details: nothing ran from that heartbeat to the stop.
			var got struct {
				activities.GuardResult
				LastAt int64 `json:"lastAt"`
			}
			_ = ce.Details(&got)
			r = got.GuardResult
			if r.Attempts == 0 && d.guardStopAt != 0 {
				from := max(startedAt, got.LastAt)
				r.Gaps = blindUntil(r.Gaps, from, d.guardStopAt, g.Interval.D()+time.Second)
			}
		case temporal.IsCanceledError(err) && d.guardStopAt != 0:
			// No attempt acknowledged the cancellation (a running Guard
			// answers with its result): none was running. Either the first
			// had not been picked up since the guardrails started, or a
			// retry was waiting after a dead worker's heartbeat timeout, so
			// nothing ran for at least that timeout. Blind from then (a
			// lower bound) to the stop.
			from := max(startedAt, d.guardStopAt-ao.HeartbeatTimeout.Milliseconds())
			r.Gaps = blindUntil(r.Gaps, from, d.guardStopAt, g.Interval.D()+time.Second)
		case temporal.IsCanceledError(err):
		case d.guardStopAt != 0 && errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_HEARTBEAT:
			// Cancelled while its worker was gone: Temporal does not retry an
			// activity whose cancellation was requested, so the heartbeat
			// timeout ends it. Nothing watched the guardrails from its last
			// sample (in the last heartbeat the server kept) until they were
			// stopped; without those details, from one timeout before now
			// (later than the truth when this task ran late).
			from := workflow.Now(c).UnixMilli() - ao.HeartbeatTimeout.Milliseconds()
			var last struct {
				LastAt int64 `json:"lastAt"`
			}
			if te.HasLastHeartbeatDetails() && te.LastHeartbeatDetails(&last) == nil && last.LastAt > 0 {
				from = last.LastAt
			}
			r.Gaps = blindUntil(r.Gaps, max(startedAt, from), d.guardStopAt, 0)
			d.event(workflow.Now(c).UnixMilli(), "guardrail", "the guard's worker was gone when the drill stopped it ("+brief(err)+")")
		case d.guardStopAt != 0:
			d.event(workflow.Now(c).UnixMilli(), "guardrail", "the guard ended with an error after it was stopped: "+brief(err))
		default:
			d.event(workflow.Now(c).UnixMilli(), "guardrail", "guardrails stopped working: "+brief(err))
			d.finding("high", "guardrails stopped working before the drill ended", brief(err))
			d.abort(c, "guardrails stopped working: "+brief(err)) // an unguarded drill does not go on
		}
		d.blind("guardrails", r.Gaps)
		if r.Tripped {
			d.st.Guardrails.Tripped, d.st.Guardrails.Detail = r.Name, r.Detail
			d.event(r.At, "guardrail", r.Name+" tripped: "+r.Detail)
			d.finding("high", "guardrail tripped: "+r.Name, r.Detail)
			d.abort(c, "guardrail "+r.Name+" tripped: "+r.Detail)
		}
	})
}

// blindUntil adds the gap from..to (Unix ms) when it is longer than
// longerThan: the guard ran nowhere in between.
func blindUntil(gaps []activities.Gap, from, to int64, longerThan time.Duration) []activities.Gap {
	if to-from > longerThan.Milliseconds() {
		gaps = append(gaps, activities.Gap{From: from, To: to})
	}
	return gaps
}

// stopGuardrails cancels the guardrails and waits until the guard activity
// has ended (bounded by its heartbeat timeout: a dead worker cannot
// acknowledge), so no activity stays pending on a finished drill.
func (d *drill) stopGuardrails(ctx workflow.Context) {
	if d.guardCancel == nil {
		return
	}
	d.guardStopAt = workflow.Now(ctx).UnixMilli()
	d.guardCancel()
	limit := 2*beatFor(d.spec.Guardrails.Interval.D()) + 5*time.Second
	if ok, _ := workflow.AwaitWithTimeout(ctx, limit, func() bool { return d.guardDone }); !ok {
		d.event(workflow.Now(ctx).UnixMilli(), "guardrail", "the guard activity did not acknowledge its cancellation within "+limit.String())
	}
	d.st.Guardrails.Active = false
}

// blind records time no worker ran a check: a ledger blind spot, an event
// and a finding each.
func (d *drill) blind(what string, gaps []activities.Gap) {
	for _, g := range gaps {
		ms := g.To - g.From
		if ms <= 0 {
			continue
		}
		b := ledger.BlindSpot{What: what, Phase: d.st.Phase, From: g.From, To: g.To, Attempt: g.Attempt}
		d.rec.BlindSpots = append(d.rec.BlindSpots, b)
		d.event(g.From, "blind", b.Describe())
		risk := "a mark observed after it may be late by up to that much"
		if what == "guardrails" {
			risk = "a guardrail could have tripped unseen"
		}
		d.finding("medium", fmt.Sprintf("%s unchecked for %.1f s", what, float64(ms)/1000),
			fmt.Sprintf("no worker ran it from %s to %s%s; %s",
				time.UnixMilli(g.From).UTC().Format("15:04:05.000"), time.UnixMilli(g.To).UTC().Format("15:04:05.000"), resumedBy(g.Attempt), risk))
	}
}

func resumedBy(attempt int) string {
	if attempt == 0 {
		return ""
	}
	return fmt.Sprintf(" (attempt %d resumed)", attempt)
}

// delayOf is how much unobserved time (crash gaps) came before an
// observation at `at`: the mark may be late by up to that much.
func delayOf(gaps []activities.Gap, at int64) int64 {
	var ms int64
	for _, g := range gaps {
		if g.From < at && g.To > g.From {
			ms += min(g.To, at) - g.From
		}
	}
	return ms
}

func (d *drill) execAct(ctx workflow.Context, summary string, fn, arg, out any) error {
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts(summary, 5)), fn, arg).Get(ctx, out)
}

func (d *drill) wait(ctx workflow.Context, summary string, in activities.WaitInput, out *activities.WaitResult) error {
	ao := opts(summary, 0)
	ao.StartToCloseTimeout = in.Timeout + in.HoldFor + time.Minute
	ao.HeartbeatTimeout = beatFor(in.Interval)
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ao), d.act.WaitFor, in).Get(ctx, out)
	d.blind("check \""+strings.TrimSpace(summary)+"\"", out.Gaps)
	// Keep the readings of the drill's main SLI for the report's chart.
	if len(d.spec.Mitigation.SLO) > 0 {
		name := d.spec.Mitigation.SLO[0].Name
		d.rec.SLIName = name
		d.rec.SLI = append(d.rec.SLI, out.Series[name]...)
	}
	return err
}

// runStep carries out one mitigation or restore step.
func (d *drill) runStep(ctx workflow.Context, summary string, st drills.Step) (activities.ActionResult, error) {
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
		d.blind("check \""+summary+": verify\"", fr.Gaps)
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
		a := *st.Action
		a.Key = d.rec.ID + "/" + st.Name // the same key on every retry of this step
		err = d.execAct(ctx, summary, d.act.RunAction, activities.ActionInput{Target: spec.Target(activities.CapRunner, st.Target), Action: a}, &r)
	case st.Database != nil:
		// Promotions and switchovers take minutes (an Aurora global
		// switchover can take several); providers wait with the SDK's
		// waiters, bounded by their own maxWait.
		ao := opts(summary, 3)
		ao.StartToCloseTimeout = 30 * time.Minute
		err = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ao), d.act.DBOp,
			activities.DBInput{Target: spec.Target(activities.CapDatabase, st.Target), Op: st.Database.Op, Node: st.Database.Node}).Get(ctx, &r)
	default:
		err = temporal.NewNonRetryableApplicationError("step "+st.Name+" has nothing to do", "BadStep", nil)
	}
	now := workflow.Now(ctx).UnixMilli()
	if err != nil {
		d.event(now, "step", st.Name+" failed: "+brief(err))
		return r, err
	}
	if r.Attempt > 1 {
		d.finding("medium", fmt.Sprintf("step %q needed %d attempts", st.Name, r.Attempt), r.Output.Detail)
	}
	d.event(now, "step", st.Name+": "+r.Output.Detail)
	return r, nil
}

// restore stops the drill's own faults, runs the restore steps, puts load
// and weights back as the preflight snapshot saw them, and then checks the
// steady state on conclusive data. Restored is true only when every part
// succeeded and the steady state held; every failure is a finding.
func (d *drill) restore(ctx workflow.Context) {
	if len(d.injected) == 0 && !d.loadChanged && !d.deployed {
		d.rec.Restored = true // nothing was changed: mitigation only follows an injection
		return
	}
	d.phase(ctx, "restoring")
	ro := opts("", 10)
	ro.RetryPolicy.MaximumInterval = 5 * time.Second
	failed := func(title, detail string) {
		d.restoreFailed = append(d.restoreFailed, title)
		d.finding("high", title, detail)
	}
	for i := len(d.injected) - 1; i >= 0; i-- {
		f := d.injected[i]
		ro.Summary = "Restore: stop " + f.fault.Kind + " (" + f.name + ")"
		var fr activities.FaultResult
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ro), d.act.StopFault,
			activities.FaultInput{Target: f.target, Fault: f.fault, Handle: f.handle}).Get(ctx, &fr)
		switch {
		case err != nil && f.started:
			failed("restore could not stop fault "+f.fault.Kind+": manual action needed", brief(err))
			continue
		case err != nil:
			// Its inject failed: it may or may not be in effect.
			failed("restore could not confirm that fault "+f.fault.Kind+" (whose inject failed) is not in effect: check by hand", brief(err))
			continue
		}
		if fr.Attempt > 1 {
			d.finding("medium", fmt.Sprintf("restore needed %d attempts to stop %s", fr.Attempt, f.fault.Kind), "")
		}
		if fr.NotOurs != "" {
			d.event(fr.At, "restore", "left alone "+fr.NotOurs+": not this drill's")
			d.finding("low", "restore found another owner's fault and left it alone", fr.NotOurs)
		}
		switch {
		case fr.NotFound && !f.started:
			d.event(fr.At, "restore", "nothing to stop for "+f.fault.Kind+": its inject never took effect")
		case fr.NotFound:
			d.event(fr.At, "restore", f.fault.Kind+" was already over")
		default:
			d.event(fr.At, "restore", "stopped "+f.fault.Kind+stoppedIDs(fr.Stopped))
		}
	}
	for _, st := range d.spec.Restore {
		if _, err := d.runStep(workflow.WithActivityOptions(ctx, ro), "Restore: "+st.Name, st); err != nil {
			failed("restore step "+st.Name+" failed: manual action needed", brief(err))
		}
	}
	if d.loadChanged {
		ro.Summary = "Restore: load back to 1x"
		var ar activities.ActionResult
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ro), d.act.RunAction, activities.ActionInput{
			Target: d.spec.Target(activities.CapRunner, nil),
			Action: activities.Action{Name: "load", Key: d.rec.ID + "/load-reset", Params: map[string]string{"multiplier": "1"}},
		}).Get(ctx, &ar)
		if err != nil {
			failed("restore could not put load back to 1x: manual action needed", brief(err))
		} else {
			d.event(ar.EndedAt, "restore", "load back to 1x")
		}
	}
	if d.snapshot != nil {
		ro.Summary = "Restore: put back weights and load as preflight saw them"
		var pb activities.PutBackResult
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ro), d.act.PutBack, *d.snapshot).Get(ctx, &pb); err != nil {
			failed("restore could not put weights and load back as preflight saw them: manual action needed", brief(err))
		} else {
			d.rec.PutBack = pb.Changed
			for _, c := range pb.Changed {
				d.event(pb.At, "restore", "put back "+c)
			}
		}
	}
	if len(d.restoreFailed) > 0 {
		d.event(workflow.Now(ctx).UnixMilli(), "restore", "steady state not checked: restore did not complete")
		d.rec.Restored = false
		return
	}
	var ss activities.WaitResult
	err := d.wait(ctx, "Restored: steady state holds", activities.WaitInput{
		ChecksInput: activities.ChecksInput{Signals: d.signals(), Checks: d.spec.SteadyState},
		Until:       activities.UntilAllPass, Interval: d.spec.Recovery.Interval.D(),
		HoldFor: d.spec.Recovery.HoldFor.D(), Timeout: d.spec.Recovery.Timeout.D(),
	}, &ss)
	switch {
	case err != nil:
		failed("steady state could not be read after restore", brief(err))
	case !ss.Met:
		failed("steady state did not return after restore within "+d.spec.Recovery.Timeout.String(), ss.Detail)
	default:
		// Slow: more than 10 samples beyond what the hold itself takes.
		hold := int(d.spec.Recovery.HoldFor.D() / max(d.spec.Recovery.Interval.D(), time.Millisecond))
		if ss.Samples > hold+10 {
			d.finding("low", fmt.Sprintf("steady state was slow to return after restore (%d samples, %d needed for the hold)", ss.Samples, hold+1), ss.Detail)
		}
		d.mark(ledger.Restored, ss.At, "steady state observed after restore", ss.Detail, delayOf(ss.Gaps, ss.At))
	}
	d.rec.Restored = len(d.restoreFailed) == 0
}

func stoppedIDs(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return " (" + strings.Join(ids, ", ") + ")"
}

// releaseLease gives the lease back on every exit path; releasing one not
// held is a no-op.
func (d *drill) releaseLease(ctx workflow.Context) {
	if !d.leaseTried {
		return
	}
	// Retried for up to two minutes: a lock busy with another holder's
	// update or a loaded server is no reason to leave the lease to the
	// lock's liveness check.
	ro := opts("Lease: release", 0)
	ro.StartToCloseTimeout, ro.ScheduleToCloseTimeout = 30*time.Second, 2*time.Minute
	ro.RetryPolicy.MaximumInterval = 5 * time.Second
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ro), d.lact.ReleaseLease,
		lease.ReleaseInput{Keys: d.leaseKeys, Holder: d.rec.ID}).Get(ctx, nil); err != nil {
		d.event(workflow.Now(ctx).UnixMilli(), "lease", "release failed (the lock frees itself when the drill is closed): "+brief(err))
	}
}

// finish derives the outcome from what was observed, scores the marks,
// writes the reports, and ends the workflow: failed (typed, the record in
// the details) unless the drill recovered and restored.
func (d *drill) finish(ctx workflow.Context, cancelled bool, err error) (ledger.Record, error) {
	var ref refusal
	errType := ""
	switch {
	case errors.As(err, &ref):
		d.rec.Outcome, d.rec.Reason, errType = ledger.OutcomeRefused, "refused: "+ref.msg, ErrRefused
		d.finding("high", "the drill was refused", ref.msg)
	case d.aborted != "":
		d.rec.Outcome, d.rec.Reason, errType = ledger.OutcomeAborted, d.aborted, ErrAborted
	case cancelled:
		d.rec.Outcome, d.rec.Reason, errType = ledger.OutcomeAborted, "the drill workflow was cancelled", ErrAborted
	case err != nil:
		d.rec.Outcome, d.rec.Reason, errType = ledger.OutcomeNotRecovered, err.Error(), ErrNotRecovered
	case !d.hasMark(ledger.Recovered):
		// Recovery is what was observed, never the absence of an error.
		d.rec.Outcome, d.rec.Reason, errType = ledger.OutcomeNotRecovered, "no recovery was observed", ErrNotRecovered
	default:
		d.rec.Outcome = ledger.OutcomeRecovered
	}
	if !d.rec.Restored {
		why := "restore failed: " + strings.Join(d.restoreFailed, "; ")
		if d.rec.Reason != "" {
			why += " (after: " + d.rec.Outcome + ": " + d.rec.Reason + ")"
		}
		d.rec.Outcome, d.rec.Reason, errType = ledger.OutcomeRestoreFailed, why, ErrRestoreFailed
	}
	d.rec.EndedAt = workflow.Now(ctx).UnixMilli()
	d.rec.Scores = ledger.ScoreMarks(d.rec.Marks, d.spec.Targets)
	d.rec.Findings = append(d.rec.Findings, ledger.ScoreFindings(d.rec.Scores)...)
	d.noteFinished(ctx) // before the reports, which list the notifications
	if d.in.ReportDir != "" {
		ao := opts("Write reports to "+d.in.ReportDir, 5)
		if werr := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ao), d.act.WriteReport,
			activities.ReportInput{Dir: d.in.ReportDir, Record: d.rec}).Get(ctx, nil); werr != nil {
			workflow.GetLogger(ctx).Error("writing reports failed", "error", werr)
		}
	}
	d.st.Outcome = d.rec.Outcome
	d.phase(ctx, "done")
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrOutcome.ValueSet(d.rec.Outcome))
	if errType != "" {
		return d.rec, endedAs(errType, "drill "+d.rec.Outcome+": "+d.rec.Reason, d.rec)
	}
	return d.rec, nil
}
