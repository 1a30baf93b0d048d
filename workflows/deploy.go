package workflows

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/analysis"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/lease"
	"github.com/drillship/drillship/notify"
	"github.com/drillship/drillship/policy"
)

// Deploy outcomes. Only `promoted` ends the workflow as completed; the
// others end it failed with a typed error (see outcome.go) carrying the
// record, so the Temporal UI's list and workflow-failure alerts tell them
// apart from a promotion.
const (
	OutcomePromoted = "promoted"
	// OutcomeRolledBack: the canary failed its analysis, a person asked for
	// a rollback, or a step failed; traffic was verified back on stable and
	// the canary stopped.
	OutcomeRolledBack = "rolled_back"
	// OutcomeAborted: a person aborted (`deploy abort`, or a cancellation
	// from the Temporal UI, CLI or a parent), or the canary could not be
	// deployed; traffic was verified back on stable.
	OutcomeAborted = "aborted"
	// OutcomeRollbackFailed: traffic could not be verified back on stable.
	// The canary is left running; the reason says what a person must do.
	OutcomeRollbackFailed = "rollback_failed"
	// OutcomeRefused: nothing was changed (another deploy or drill holds
	// the service, no stable version, the version is already stable).
	OutcomeRefused = "refused"
)

// Update names a deploy answers to.
const (
	UpdateApprove    = "approve"
	UpdatePause      = "pause"
	UpdateResume     = "resume"
	UpdateAbort      = "abort"
	UpdateRollback   = "rollback"
	UpdateBreakGlass = "break-glass"
	QueryState       = "state"
)

// DeployInput starts a deploy.
type DeployInput struct {
	Spec    deploys.Spec `json:"spec"`
	Version string       `json:"version"`
	// CommitTime is when the change was committed (Unix ms), for lead time.
	CommitTime int64 `json:"commitTime,omitempty"`
	// RequestedBy is who started it.
	RequestedBy string `json:"requestedBy,omitempty"`
	// Hotfix: passes freezes and budget thresholds that let hotfixes
	// through; recorded as such.
	Hotfix bool `json:"hotfix,omitempty"`
	// Policy is the release policy the deploy is gated by (policy.yaml);
	// nil: no gates.
	Policy *policy.Policy `json:"policy,omitempty"`
	// Reason and Incident break glass at the start: a refusal by the
	// policy is overridden when the policy lets RequestedBy break glass
	// and the incident is verified open. Reason also justifies a hotfix.
	Reason   string `json:"reason,omitempty"`
	Incident string `json:"incident,omitempty"`
}

// DeployID is the workflow id of a deploy.
func DeployID(service, version string) string { return "deploy/" + service + "/" + version }

// Command is what a person sends with an update: who, and why.
type Command struct {
	Who    string `json:"who,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Incident is the incident a break-glass is tied to (policy).
	Incident string `json:"incident,omitempty"`
}

// AuditRecord is one human decision, kept in the result and the log.
type AuditRecord struct {
	Action   string `json:"action"`
	Who      string `json:"who"`
	Reason   string `json:"reason,omitempty"`
	At       int64  `json:"at"`
	Step     int    `json:"step"`
	Incident string `json:"incident,omitempty"`
	Rule     string `json:"rule,omitempty"` // the policy rule passed or overridden
}

// Kinds of watch a step record is about.
const (
	WatchWindow = "window" // the step's analysis window
	WatchHeld   = "held"   // the canary held at its weight: paused or awaiting approval
	WatchBake   = "bake"   // at 100% before the old version is retired
)

// Step verdicts.
const (
	VerdictPass         = analysis.Pass
	VerdictFail         = analysis.Fail
	VerdictInsufficient = "insufficient" // too few conclusive samples: not a pass
	VerdictInterrupted  = "interrupted"  // a person acted, or the hold ended, before the window did
	VerdictError        = "error"        // the watch itself failed
	VerdictWatched      = "watched"      // a hold that ended with nothing wrong seen
)

// StepRecord is one watch of the canary at a weight: the step's window, a
// hold (paused, awaiting approval) or the bake. Every sample taken is in
// one of them; unobserved time (no worker was watching) is shown, never
// counted as evidence.
type StepRecord struct {
	Step         int                `json:"step"` // 1-based; 0 for the bake
	Kind         string             `json:"kind"`
	Weight       int                `json:"weight"`
	Verdict      string             `json:"verdict"`
	Reason       string             `json:"reason,omitempty"`
	StartedAt    int64              `json:"startedAt,omitempty"`
	EndedAt      int64              `json:"endedAt,omitempty"`
	Samples      int                `json:"samples"`
	Conclusive   int                `json:"conclusive"`
	Inconclusive int                `json:"inconclusive"`
	Errors       int                `json:"errors"`
	Failures     int                `json:"failures"`
	UnobservedMs int64              `json:"unobservedMs"`
	Gaps         []activities.Gap   `json:"gaps,omitempty"`
	Attempts     int                `json:"attempts,omitempty"`
	Last         []analysis.Verdict `json:"last,omitempty"`
}

// DeployState is what the `state` query answers.
type DeployState struct {
	Service      string             `json:"service"`
	Version      string             `json:"version"`
	Stable       string             `json:"stable"`
	Phase        string             `json:"phase"`
	Step         int                `json:"step"` // 1-based; 0 before the first
	Steps        int                `json:"steps"`
	Weights      activities.Weights `json:"weights"`
	WindowEndsAt int64              `json:"windowEndsAt,omitempty"`
	Paused       bool               `json:"paused"`
	Waiting      string             `json:"waiting,omitempty"` // what a human is asked for
	LastVerdicts []analysis.Verdict `json:"lastVerdicts,omitempty"`
	Reason       string             `json:"reason,omitempty"` // why it rolled back or stopped
	Outcome      string             `json:"outcome,omitempty"`
}

// DeployResult is the record of a finished deploy.
type DeployResult struct {
	Service          string        `json:"service"`
	Version          string        `json:"version"`
	Previous         string        `json:"previous"`
	Environment      string        `json:"environment"`
	Outcome          string        `json:"outcome"`
	Reason           string        `json:"reason,omitempty"`
	StartedAt        int64         `json:"startedAt"`
	EndedAt          int64         `json:"endedAt"`
	DurationMs       int64         `json:"durationMs"`
	FirstTrafficAt   int64         `json:"firstTrafficAt,omitempty"` // the canary first took traffic
	FailedSampleAt   int64         `json:"failedSampleAt,omitempty"`
	RollbackAt       int64         `json:"rollbackAt,omitempty"`
	TimeToRollbackMs *int64        `json:"timeToRollbackMs,omitempty"`
	CommitTime       int64         `json:"commitTime,omitempty"`
	LeadTimeMs       *int64        `json:"leadTimeMs,omitempty"`
	Steps            []StepRecord  `json:"steps"`
	Audit            []AuditRecord `json:"audit,omitempty"`
	Findings         []string      `json:"findings,omitempty"`
	// Preflight holds the providers' own checks, made before anything
	// changed (a PodDisruptionBudget exists, the worker may do its work).
	Preflight    []activities.Finding `json:"preflight,omitempty"`
	FinalWeights activities.Weights   `json:"finalWeights"`
	Pruned       []string             `json:"pruned,omitempty"`
	// Hotfix: started as a hotfix (policy).
	Hotfix bool `json:"hotfix,omitempty"`
	// Notifications sent about the deploy: event, channel, ok/failed.
	Notifications []notify.Record `json:"notifications,omitempty"`
}

// Time bounds on the way back: every deploy must be reversible in under two
// minutes (the seeds' rule). A traffic shift back to stable that cannot be
// verified within it is reported, not waited on silently.
const (
	rollbackBudget = 2 * time.Minute
	// deadlineMargin: when the workflow has an execution timeout, it aborts
	// itself this long before it, so that the rollback still runs.
	deadlineMargin = 4 * time.Minute
)

// ending is how a deploy ends, as the runbook decided; finish carries it
// out (a rollback for everything but a promotion or a refusal).
type ending struct {
	outcome  string
	reason   string
	failedAt int64 // the failing sample, for time to rollback
}

type deploy struct {
	in   DeployInput
	spec deploys.Spec
	st   DeployState
	res  DeployResult
	act  *activities.Activities // nil pointer: only used for method names
	ls   *lease.Activities      // likewise

	// interrupt is set by abort, rollback, break-glass and cancellation;
	// it ends any wait.
	interrupt  string
	cmd        Command
	approved   bool
	cancelWait workflow.CancelFunc

	// pol is the release policy when its gates are on (the run has the
	// "policy-gates" marker and a policy); nil otherwise.
	pol          *policy.Policy
	auditF       []workflow.Future // audit log appends, waited on at the end
	thawed       bool              // a person approved past a freeze: no more freeze holds
	burnAt       int64             // when a burn-rate gate tripped (Unix ms)
	trafficSince int64             // when the burn-rate watch first saw the canary take traffic (Unix ms)
	sliFailed    bool              // a policy reading of the SLI failed (found once)
	stopBurn     workflow.CancelFunc

	note   *notify.Sender // notifications (notify.go); nil: none sent
	holds  int            // holds announced, for their event ids
	breaks int            // break-glasses announced, likewise

	leased   []string // lease keys held
	deployed bool     // the canary's deploy was attempted: stop it unless promoted
	shifted  bool     // a traffic shift was attempted: put traffic back unless promoted
	pending  int      // watches cancelled whose samples have not come back yet
	// canaryScales: the release sizes its canary for each share (preflight).
	canaryScales bool
}

// Deploy runs a canary deploy as its runbook says: take the service's lease,
// deploy the canary, step its weight up while watching its SLIs, promote,
// bake, retire. Whatever ends it other than a promotion (a failed
// judgement, a person, a cancellation, a failing step, a deadline) ends in
// the same place: traffic verified back on stable, then the canary stopped.
func Deploy(ctx workflow.Context, in DeployInput) (DeployResult, error) {
	// Versioning: runs started before "deploy-safety" replay the frozen
	// code they started with (deploy_v0.go). See the README, "Changing the
	// workflows".
	if workflow.GetVersion(ctx, "deploy-safety", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return deployV0Run(ctx, in)
	}
	d := &deploy{in: in, spec: in.Spec}
	// Policy gates: runs started before "policy-gates", or without a
	// policy, take none of the calls below (gates.go).
	if in.Policy != nil && workflow.GetVersion(ctx, "policy-gates", workflow.DefaultVersion, 1) == 1 {
		d.pol = in.Policy
	}
	if in.Policy != nil {
		d.note = notifier(ctx, in.Policy.Notifications) // versioned: notify.go
	}
	d.st = DeployState{Service: in.Spec.Service, Version: in.Version, Steps: len(in.Spec.Steps), Phase: "starting"}
	d.res = DeployResult{Service: in.Spec.Service, Version: in.Version, Environment: in.Spec.Environment,
		StartedAt: workflow.Now(ctx).UnixMilli(), CommitTime: in.CommitTime, Steps: []StepRecord{}}
	if err := d.register(ctx); err != nil {
		return d.res, err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		AttrKind.ValueSet("deploy"), AttrService.ValueSet(in.Spec.Service),
		AttrVersion.ValueSet(in.Version), AttrEnvironment.ValueSet(in.Spec.Environment),
		AttrPhase.ValueSet("starting"))
	d.armDeadline(ctx)

	e := d.run(ctx)
	if d.stopBurn != nil {
		d.stopBurn()
	}
	// The way back runs on a context that a cancellation does not reach.
	rctx, _ := workflow.NewDisconnectedContext(ctx)
	d.finish(rctx, e)
	d.flushAudit(rctx)
	d.noteEnd(rctx)
	return d.end(rctx)
}

func (d *deploy) run(ctx workflow.Context) ending {
	if d.pol != nil {
		if e := d.gateStart(ctx); e != nil {
			return *e
		}
	}
	if e := d.acquire(ctx); e != nil {
		return *e
	}
	var rs activities.ReleaseState
	if err := d.call(ctx, callRead, "Read release state of "+d.spec.Service, d.act.ReleaseState, d.spec.Release, &rs); err != nil {
		return d.refuse(ctx, "could not read the release state: "+brief(err))
	}
	switch {
	case rs.Service != "" && rs.Service != d.spec.Service:
		return d.refuse(ctx, fmt.Sprintf("the release target serves %q, not %q", rs.Service, d.spec.Service))
	case rs.Stable == "":
		return d.refuse(ctx, "the release target has no stable version to compare with or roll back to")
	case rs.Stable == d.in.Version:
		return d.refuse(ctx, fmt.Sprintf("version %s is already the stable version of %s", d.in.Version, d.spec.Service))
	}
	d.st.Stable, d.res.Previous = rs.Stable, rs.Stable
	d.st.Weights = d.weights(0)
	if e := d.preflight(ctx); e != nil {
		return *e
	}

	d.setPhase(ctx, "deploying")
	d.deployed = true
	if err := d.call(ctx, callRelease, "Deploy canary "+d.in.Version, d.act.DeployVersion, d.versionIn(d.in.Version), nil); err != nil {
		if e := d.afterError(ctx); e != nil {
			return *e
		}
		return ending{outcome: OutcomeAborted, reason: "deploy of the canary failed: " + brief(err)}
	}
	if d.pol != nil {
		d.watchBurn(ctx)
	}

	for i, step := range d.spec.Steps {
		// A person may have acted while the canary was deploying or between
		// steps: nothing more is shifted once they have.
		if d.interrupt != "" {
			return d.interrupted(ctx)
		}
		d.st.Step = i + 1
		if step.Approval || (d.spec.Production && step.Weight == 100) {
			if e := d.waitApproval(ctx, fmt.Sprintf("step %d: shift %d%% to %s", i+1, step.Weight, d.in.Version)); e != nil {
				return *e
			}
		}
		if d.pol != nil {
			if e := d.gateShift(ctx); e != nil {
				return *e
			}
		}
		d.setPhase(ctx, "shifting")
		if err := d.shift(ctx, step.Weight); err != nil {
			if e := d.afterError(ctx); e != nil {
				return *e
			}
			return ending{outcome: OutcomeRolledBack, reason: fmt.Sprintf("shifting %d%% to %s failed: %s", step.Weight, d.in.Version, brief(err))}
		}
		if step.Pause > 0 {
			d.setPhase(ctx, "watching")
			if e := d.judge(ctx, WatchWindow, step.Pause.D(), true); e != nil {
				return *e
			}
		}
		if e := d.holdWhilePaused(ctx); e != nil {
			return *e
		}
	}
	return d.promote(ctx, false)
}

// judge watches the canary for a window and acts on the verdict: nil means
// the window passed on enough evidence.
func (d *deploy) judge(ctx workflow.Context, kind string, window time.Duration, baseline bool) *ending {
	w := d.observe(ctx, kind, window, false, baseline, nil, false)
	switch {
	case d.interrupt != "":
		return ptr(d.interrupted(ctx))
	case w.err != nil:
		return &ending{outcome: OutcomeRolledBack, reason: "analysis failed: " + brief(w.err)}
	case w.res.Failed:
		return d.onFailedJudgement(ctx, w.res)
	}
	return nil
}

// onFailedJudgement rolls back, or with `onFailure: pause` holds the canary
// (still watched) for a person: resume watches the step again.
func (d *deploy) onFailedJudgement(ctx workflow.Context, r activities.WatchResult) *ending {
	if d.spec.OnFailure != "pause" {
		return &ending{outcome: OutcomeRolledBack, reason: r.Reason, failedAt: r.FailedAt}
	}
	d.st.Reason = r.Reason
	d.st.Paused = true
	d.setPhase(ctx, "paused-on-failure")
	workflow.GetLogger(ctx).Warn("judgement failed; paused for a person", "reason", r.Reason)
	if e := d.hold(ctx, "decision after a failed judgement: resume (watch again), rollback, abort or break-glass",
		func() bool { return !d.st.Paused }, false); e != nil {
		return e
	}
	d.setPhase(ctx, "watching")
	return d.judge(ctx, WatchWindow, d.heldPeriod(), d.canaryWeight() < 100)
}

// hold keeps the canary at its weight until cond holds, watched (pausing
// never switches safety off) and with every sample in the step records.
// failEnds: a failed judgement while held ends the hold as a failure; when
// false (already paused after a failure) it is only recorded.
func (d *deploy) hold(ctx workflow.Context, waiting string, cond func() bool, failEnds bool) *ending {
	d.st.Waiting = waiting
	defer func() { d.st.Waiting = "" }()
	for !cond() {
		if d.interrupt != "" {
			return ptr(d.interrupted(ctx))
		}
		if d.canaryWeight() == 0 {
			// Nothing takes traffic yet: nothing to watch.
			if err := workflow.Await(ctx, func() bool { return cond() || d.interrupt != "" }); err != nil {
				d.noteCancel(ctx)
			}
			continue
		}
		w := d.observe(ctx, WatchHeld, d.heldPeriod(), true, d.canaryWeight() < 100, cond, !failEnds)
		switch {
		case d.interrupt != "":
			return ptr(d.interrupted(ctx))
		case w.res.Failed && failEnds:
			return d.onFailedJudgement(ctx, w.res)
		case w.err != nil && !w.left:
			// The watch itself gave up: the canary is no longer observed.
			return &ending{outcome: OutcomeRolledBack, reason: "analysis failed while held: " + brief(w.err)}
		}
	}
	return nil
}

// heldPeriod is the span over which a held canary must show enough
// conclusive samples: the current step's window, or ten intervals.
func (d *deploy) heldPeriod() time.Duration {
	if d.st.Step > 0 && d.st.Step <= len(d.spec.Steps) && d.spec.Steps[d.st.Step-1].Pause > 0 {
		return d.spec.Steps[d.st.Step-1].Pause.D()
	}
	return 10 * d.spec.Analysis.Interval.D()
}

func (d *deploy) waitApproval(ctx workflow.Context, what string) *ending {
	d.approved = false
	d.setPhase(ctx, "awaiting-approval")
	workflow.GetLogger(ctx).Info("waiting for approval", "for", what)
	return d.hold(ctx, "approval: "+what, func() bool { return d.approved }, true)
}

// holdWhilePaused keeps the deploy at its weight while paused.
func (d *deploy) holdWhilePaused(ctx workflow.Context) *ending {
	if !d.st.Paused {
		return nil
	}
	d.setPhase(ctx, "paused")
	return d.hold(ctx, "resume: drillship deploy resume "+DeployID(d.spec.Service, d.in.Version), func() bool { return !d.st.Paused }, true)
}

// watched is one watch of the canary as it ended.
type watched struct {
	res  activities.WatchResult
	err  error // the watch activity failed: not a verdict
	left bool  // left before it ended on its own: a person acted, or the hold's condition came true
}

// observe runs one watch activity and records it as a step record. until,
// when set, ends the watch early (a hold's condition). A person's
// interruption ends it at once: the rollback does not wait for the watch
// to acknowledge its cancellation; its samples are collected before the
// workflow ends (finish).
func (d *deploy) observe(ctx workflow.Context, kind string, window time.Duration, forever, baseline bool, until func() bool, recordOnly bool) watched {
	if d.interrupt != "" {
		return watched{left: true}
	}
	wctx, cancel := workflow.WithCancel(ctx)
	d.cancelWait = cancel
	defer func() { d.cancelWait = nil }()
	a := d.spec.Analysis
	in := activities.WatchInput{
		Signals: a.Target, Metrics: a.Metrics, Canary: d.in.Version, Stable: d.st.Stable,
		Interval: a.Interval.D(), Duration: window, Forever: forever,
		FailureLimit: a.FailureLimit, MinRequests: a.MinRequests, Baseline: baseline,
	}
	if recordOnly {
		// Paused after a failed judgement: samples are recorded for the
		// person deciding; failures no longer end the watch.
		in.FailureLimit = math.MaxInt32
	}
	ao := workflow.ActivityOptions{
		Summary: fmt.Sprintf("Watch %s at %d%% for %s", d.in.Version, d.canaryWeight(), window),
		// A window is extended by the time nobody watched it: bound the
		// whole watch, retries included, generously.
		ScheduleToCloseTimeout: 3*window + 10*time.Minute,
		HeartbeatTimeout:       activities.WatchHeartbeatTimeout(a.Interval.D(), 0),
		WaitForCancellation:    true,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 5 * time.Second},
	}
	if forever {
		ao.Summary = fmt.Sprintf("Watch %s at %d%% while held", d.in.Version, d.canaryWeight())
		ao.ScheduleToCloseTimeout = 30 * 24 * time.Hour
	} else {
		d.st.WindowEndsAt = workflow.Now(ctx).Add(window).UnixMilli()
	}
	rec := StepRecord{Step: d.st.Step, Kind: kind, Weight: d.canaryWeight(), StartedAt: workflow.Now(ctx).UnixMilli()}
	if kind == WatchBake {
		rec.Step = 0
	}
	f := workflow.ExecuteActivity(workflow.WithActivityOptions(wctx, ao), d.act.Watch, in)
	var w watched
	done := false
	d.pending++
	workflow.Go(ctx, func(g workflow.Context) {
		err := f.Get(g, &w.res)
		var canceled *temporal.CanceledError
		if errors.As(err, &canceled) {
			// Cancelled: the watch hands back what it saw as the details.
			if canceled.HasDetails() {
				_ = canceled.Details(&w.res)
			}
			err = nil
			w.left = true
		}
		w.err = err
		d.pending--
		done = true
		d.recordWatch(g, rec, w)
	})
	if err := workflow.Await(ctx, func() bool { return done || d.interrupt != "" || (until != nil && until()) }); err != nil {
		d.noteCancel(ctx)
	}
	d.st.WindowEndsAt = 0
	if done {
		return w
	}
	cancel()
	if d.interrupt != "" {
		return watched{left: true}
	}
	// The hold's condition came true: collect what the watch saw, including
	// a failure that came in at the same moment.
	if err := workflow.Await(ctx, func() bool { return done || d.interrupt != "" }); err != nil {
		d.noteCancel(ctx)
	}
	if !done {
		return watched{left: true}
	}
	w.left = true
	return w
}

// recordWatch appends the record of one watch.
func (d *deploy) recordWatch(ctx workflow.Context, rec StepRecord, w watched) {
	r := w.res
	rec.EndedAt = workflow.Now(ctx).UnixMilli()
	if r.StartedAt > 0 {
		rec.StartedAt = r.StartedAt
	}
	if r.EndedAt > 0 {
		rec.EndedAt = r.EndedAt
	}
	rec.Samples, rec.Conclusive, rec.Inconclusive, rec.Errors, rec.Failures = r.Samples, r.Conclusive, r.Inconclusive, r.Errors, r.Failures
	rec.UnobservedMs, rec.Gaps, rec.Attempts, rec.Last = r.UnobservedMs, r.Gaps, r.Attempts, r.Last
	switch {
	case w.err != nil:
		rec.Verdict, rec.Reason = VerdictError, brief(w.err)
	case r.Failed && r.Insufficient:
		rec.Verdict, rec.Reason = VerdictInsufficient, r.Reason
	case r.Failed:
		rec.Verdict, rec.Reason = VerdictFail, r.Reason
	case w.left && rec.Kind == WatchHeld:
		rec.Verdict = VerdictWatched
	case w.left:
		rec.Verdict = VerdictInterrupted
	default:
		rec.Verdict = VerdictPass
	}
	if len(r.Last) > 0 {
		d.st.LastVerdicts = r.Last
	}
	if d.res.FirstTrafficAt == 0 && rec.Weight > 0 {
		d.res.FirstTrafficAt = rec.StartedAt
	}
	d.res.Steps = append(d.res.Steps, rec)
}

// promote shifts everything to the new version, bakes, then makes it the
// stable one. Until the release records it as stable, a failure or a
// person still rolls back.
func (d *deploy) promote(ctx workflow.Context, breakGlass bool) ending {
	if !breakGlass && d.spec.Production && d.canaryWeight() < 100 {
		if e := d.waitApproval(ctx, "promote "+d.in.Version+" to 100%"); e != nil {
			return *e
		}
	}
	if breakGlass {
		d.st.Reason = "break-glass by " + whoOf(d.cmd) + ": " + d.cmd.Reason
	}
	if d.pol != nil && !breakGlass && d.canaryWeight() < 100 {
		if e := d.gateShift(ctx); e != nil {
			return *e
		}
	}
	d.setPhase(ctx, "promoting")
	if err := d.shift(ctx, 100); err != nil {
		if e := d.afterError(ctx); e != nil && !breakGlass {
			return *e
		}
		return ending{outcome: OutcomeRolledBack, reason: "promotion failed: " + brief(err)}
	}
	if d.spec.Bake > 0 && !breakGlass {
		d.setPhase(ctx, "baking")
		if e := d.judge(ctx, WatchBake, d.spec.Bake.D(), false); e != nil {
			if e.reason != "" && e.outcome == OutcomeRolledBack && e.failedAt > 0 {
				e.reason = "bake: " + e.reason
			}
			return *e
		}
	}
	if d.interrupt != "" && !breakGlass {
		return d.interrupted(ctx)
	}
	// The point of no return: nothing below is cancelled.
	d.setPhase(ctx, "retiring")
	pctx, _ := workflow.NewDisconnectedContext(ctx)
	old := d.st.Stable
	if err := d.call(pctx, callRelease, "Promote "+d.in.Version+" to stable", d.act.PromoteVersion, d.versionIn(d.in.Version), nil); err != nil {
		return ending{outcome: OutcomeRolledBack, reason: "recording " + d.in.Version + " as stable failed: " + brief(err)}
	}
	d.deployed, d.shifted = false, false // promoted: nothing of this deploy is to be undone
	if d.spec.TrafficKeys == deploys.KeysRole {
		// The stable backend now runs the new version: traffic goes back
		// to it and the canary backend is emptied.
		if err := d.shiftRole(pctx); err != nil {
			d.finding("the canary backend still takes traffic after promotion (both run " + d.in.Version + "): " + brief(err))
		} else if err := d.call(pctx, callStop, "Stop canary backend", d.act.StopVersion, d.versionIn(d.in.Version), nil); err != nil {
			d.finding("the canary backend could not be stopped: " + brief(err))
		}
	} else {
		d.st.Weights = activities.Weights{d.in.Version: 100, old: 0}
		if err := d.call(pctx, callStop, "Stop old version "+old, d.act.StopVersion, d.versionIn(old), nil); err != nil {
			d.finding("the old version " + old + " could not be stopped (it takes no traffic): " + brief(err))
		}
	}
	d.st.Stable = d.in.Version
	e := ending{outcome: OutcomePromoted}
	if breakGlass {
		e.reason = d.st.Reason
	}
	return e
}

// finish carries out the ending: for anything but a promotion or a
// refusal, traffic goes back to stable and is verified there before the
// canary is stopped. Then artifacts are pruned and the lease released.
func (d *deploy) finish(ctx workflow.Context, e ending) {
	d.res.Outcome, d.res.Reason = e.outcome, e.reason
	if e.outcome != OutcomePromoted && (d.shifted || d.deployed) {
		d.rollback(ctx, e)
	}
	// Samples of a watch cut short by a person: wait briefly for them so
	// the record holds every sample taken.
	if d.pending > 0 {
		_, _ = workflow.AwaitWithTimeout(ctx, activities.WatchHeartbeatTimeout(d.spec.Analysis.Interval.D(), 0),
			func() bool { return d.pending == 0 })
	}
	if d.res.Outcome != OutcomeRefused && d.res.Outcome != OutcomeRollbackFailed {
		in := activities.PruneInput{Target: d.spec.Release, Keep: d.spec.Artifacts.Keep, Current: d.st.Stable}
		if err := d.call(ctx, callRelease, fmt.Sprintf("Prune artifacts: keep %d, %s and its rollback target", in.Keep, in.Current),
			d.act.PruneArtifacts, in, &d.res.Pruned); err != nil {
			d.finding("pruning artifacts failed (the deploy stands): " + brief(err))
		}
	}
	d.release(ctx)
}

// rollback puts all traffic back on stable, verifies it there (the shift
// reads the weights back), and only then stops the canary. When the shift
// cannot be verified within the budget, the canary is left running and the
// outcome says so.
func (d *deploy) rollback(ctx workflow.Context, e ending) {
	d.st.Reason = e.reason
	d.setPhase(ctx, "rolling-back")
	if d.shifted {
		began := workflow.Now(ctx)
		at, err := d.shiftBack(ctx)
		if err != nil {
			d.res.Outcome = OutcomeRollbackFailed
			d.res.Reason = fmt.Sprintf("%s; then the rollback failed: traffic could not be verified back on %s (gave up after %s of its %s budget: %s). "+
				"%s was left running and may still take traffic: shift all traffic to %s, check it, then stop %s",
				e.reason, d.st.Stable, workflow.Now(ctx).Sub(began).Round(time.Second), rollbackBudget, brief(err), d.in.Version, d.st.Stable, d.in.Version)
			d.finding("rollback failed: traffic not verified on stable; manual action needed")
			workflow.GetLogger(ctx).Error("rollback failed", "reason", d.res.Reason)
			return
		}
		d.res.RollbackAt = at
		if e.failedAt > 0 {
			ttr := at - e.failedAt
			d.res.FailedSampleAt, d.res.TimeToRollbackMs = e.failedAt, &ttr
			if ttr > rollbackBudget.Milliseconds() {
				d.finding(fmt.Sprintf("time to rollback %s, over the %s rule", time.Duration(ttr)*time.Millisecond, rollbackBudget))
			}
		}
	}
	if d.deployed {
		if err := d.call(ctx, callStop, "Stop canary "+d.in.Version, d.act.StopVersion, d.versionIn(d.in.Version), nil); err != nil {
			d.finding("the canary " + d.in.Version + " could not be stopped (it takes no traffic): " + brief(err))
		}
	}
	workflow.GetLogger(ctx).Warn("rolled back", "outcome", d.res.Outcome, "reason", e.reason)
}

// end records the outcome where people and alerts look, and returns it:
// completed for a promotion, failed with a typed error otherwise.
func (d *deploy) end(ctx workflow.Context) (DeployResult, error) {
	d.res.EndedAt = workflow.Now(ctx).UnixMilli()
	d.res.DurationMs = d.res.EndedAt - d.res.StartedAt
	if d.res.CommitTime > 0 && d.res.Outcome == OutcomePromoted {
		lt := d.res.EndedAt - d.res.CommitTime
		d.res.LeadTimeMs = &lt
	}
	d.res.FinalWeights = d.st.Weights
	d.st.Outcome, d.st.Reason = d.res.Outcome, d.res.Reason
	d.setPhase(ctx, "done")
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrOutcome.ValueSet(d.res.Outcome))
	workflow.GetLogger(ctx).Info("deploy finished", "outcome", d.res.Outcome, "reason", d.res.Reason)
	msg := d.res.Outcome
	if d.res.Reason != "" {
		msg += ": " + d.res.Reason
	}
	switch d.res.Outcome {
	case OutcomePromoted:
		return d.res, nil
	case OutcomeRolledBack:
		return d.res, endedAs(ErrRolledBack, msg, d.res)
	case OutcomeAborted:
		return d.res, endedAs(ErrAborted, msg, d.res)
	case OutcomeRefused:
		return d.res, endedAs(ErrRefused, msg, d.res)
	default:
		return d.res, endedAs(ErrRollbackFailed, msg, d.res)
	}
}

// acquire takes the lease of the service and its traffic target: one
// deploy (or drill) at a time. A drill's own deploy is let in.
func (d *deploy) acquire(ctx workflow.Context) *ending {
	info := workflow.GetInfo(ctx)
	in := lease.AcquireInput{Keys: lease.DeployKeys(d.spec), Holder: info.WorkflowExecution.ID,
		What: fmt.Sprintf("deploy of %s %s", d.spec.Service, d.in.Version)}
	if p := info.ParentWorkflowExecution; p != nil {
		in.Parent = p.ID
	}
	if len(in.Keys) == 0 {
		return nil
	}
	// The acquire runs to its end even when the deploy is cancelled at that
	// moment: a lease granted to a deploy that then stops is given back by
	// finish rather than left to the lock's liveness check.
	actx, _ := workflow.NewDisconnectedContext(ctx)
	var r lease.AcquireResult
	err := d.call(actx, callRead, "Take the lease of "+d.spec.Service, d.ls.AcquireLease, in, &r)
	if err == nil && r.Granted {
		d.leased = in.Keys
	}
	if err != nil {
		return ptr(d.refuse(ctx, "could not take the lease of "+d.spec.Service+": "+brief(err)))
	}
	if ctx.Err() != nil {
		return ptr(d.refuse(ctx, ""))
	}
	if !r.Granted {
		what := r.HeldBy
		if r.HeldWhat != "" {
			what = r.HeldWhat + " (" + r.HeldBy + ")"
		}
		return ptr(d.refuse(ctx, fmt.Sprintf("%s is held by %s; one deploy or drill at a time", r.Key, what)))
	}
	return nil
}

// preflight runs the providers' own checks before anything changes (a
// Deployment without a PodDisruptionBudget, a role missing a verb). A failed
// check whose settings make it binding refuses the deploy; the others are
// findings. Runs started before "preflight" make no such call.
func (d *deploy) preflight(ctx workflow.Context) *ending {
	if workflow.GetVersion(ctx, "preflight", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	var r activities.PreflightResult
	if err := d.call(ctx, callRead, "Preflight checks of "+d.spec.Service, d.act.Preflight, activities.PreflightInput{Uses: d.spec.Uses()}, &r); err != nil {
		return ptr(d.refuse(ctx, "the preflight checks could not run: "+brief(err)))
	}
	d.res.Preflight = r.Findings
	d.canaryScales = r.CanaryScales
	var refused []string
	for _, f := range r.Findings {
		switch {
		case f.OK:
		case f.Refuse:
			refused = append(refused, f.Detail)
		default:
			d.finding("preflight: " + f.Detail)
		}
	}
	if len(refused) > 0 {
		return ptr(d.refuse(ctx, "preflight: "+strings.Join(refused, "; ")))
	}
	return nil
}

func (d *deploy) release(ctx workflow.Context) {
	if len(d.leased) == 0 {
		return
	}
	in := lease.ReleaseInput{Keys: d.leased, Holder: workflow.GetInfo(ctx).WorkflowExecution.ID}
	if err := d.call(ctx, callRead, "Release the lease of "+d.spec.Service, d.ls.ReleaseLease, in, nil); err != nil {
		// The lock frees itself once it sees this workflow closed.
		workflow.GetLogger(ctx).Warn("releasing the lease failed", "error", err)
	}
}

func (d *deploy) refuse(ctx workflow.Context, reason string) ending {
	if ctx.Err() != nil {
		return ending{outcome: OutcomeAborted, reason: "cancelled before anything changed"}
	}
	return ending{outcome: OutcomeRefused, reason: reason}
}

// afterError turns an error of the runbook into what a person asked for,
// when one did (a cancellation is an abort); nil otherwise.
func (d *deploy) afterError(ctx workflow.Context) *ending {
	d.noteCancel(ctx)
	if d.interrupt == "" || d.interrupt == "break-glass" {
		return nil
	}
	return ptr(d.interrupted(ctx))
}

// noteCancel turns a cancellation of the workflow (the Temporal UI's
// Cancel, `temporal workflow cancel`, a parent going away) into an abort:
// the same thing to the workflow.
func (d *deploy) noteCancel(ctx workflow.Context) {
	if ctx.Err() != nil && d.interrupt == "" {
		d.interruptWith(ctx, "abort", Command{Who: "temporal", Reason: "cancellation requested (Temporal UI, CLI or a parent workflow)"})
	}
}

// interrupted is the ending a person asked for.
func (d *deploy) interrupted(ctx workflow.Context) ending {
	switch d.interrupt {
	case "rollback":
		return ending{outcome: OutcomeRolledBack, reason: "rollback requested by " + whoOf(d.cmd) + reasonSuffix(d.cmd.Reason)}
	case "break-glass":
		if ctx.Err() == nil {
			return d.promote(ctx, true)
		}
	case interruptBurn:
		return ending{outcome: OutcomeRolledBack, reason: d.cmd.Reason, failedAt: d.burnAt}
	}
	return ending{outcome: OutcomeAborted, reason: "aborted by " + whoOf(d.cmd) + reasonSuffix(d.cmd.Reason)}
}

// armDeadline aborts the deploy before its execution timeout (if the
// starter set one), so the rollback runs instead of the server ending the
// workflow with the canary serving.
func (d *deploy) armDeadline(ctx workflow.Context) {
	info := workflow.GetInfo(ctx)
	limit := info.WorkflowExecutionTimeout
	if rt := info.WorkflowRunTimeout; rt > 0 && (limit == 0 || rt < limit) {
		limit = rt
	}
	if limit <= deadlineMargin+time.Minute {
		return
	}
	workflow.Go(ctx, func(g workflow.Context) {
		if workflow.NewTimerWithOptions(g, limit-deadlineMargin, workflow.TimerOptions{Summary: "Deadline: abort before the workflow timeout"}).Get(g, nil) == nil && d.interrupt == "" && d.st.Phase != "retiring" {
			d.interruptWith(g, "abort", Command{Who: "drillship", Reason: fmt.Sprintf("the workflow's timeout (%s) is %s away", limit, deadlineMargin)})
		}
	})
}

func (d *deploy) register(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (DeployState, error) { return d.st, nil }); err != nil {
		return err
	}
	handlers := []struct {
		name     string
		validate func(Command) error
		apply    func(workflow.Context, Command)
	}{
		{UpdateApprove, func(Command) error {
			if d.st.Waiting == "" || (d.st.Phase != "awaiting-approval" && d.st.Phase != phaseFrozen) {
				return fmt.Errorf("nothing is waiting for approval (phase %s); nothing changed", d.st.Phase)
			}
			return nil
		}, func(ctx workflow.Context, c Command) {
			d.record(ctx, "approve", c)
			d.approved = true
		}},
		{UpdatePause, func(c Command) error {
			if err := d.whileRunning(c); err != nil {
				return err
			}
			if d.st.Paused {
				return errors.New("the deploy is already paused; nothing changed")
			}
			return nil
		}, func(ctx workflow.Context, c Command) {
			d.record(ctx, "pause", c)
			d.st.Paused = true
		}},
		{UpdateResume, func(Command) error {
			if err := d.whileRunning(Command{}); err != nil {
				return err
			}
			if !d.st.Paused {
				return errors.New("the deploy is not paused; nothing changed")
			}
			return nil
		}, func(ctx workflow.Context, c Command) {
			d.record(ctx, "resume", c)
			d.st.Paused = false
		}},
		{UpdateAbort, d.whileRunning, func(ctx workflow.Context, c Command) { d.interruptWith(ctx, "abort", c) }},
		{UpdateRollback, d.whileRunning, func(ctx workflow.Context, c Command) { d.interruptWith(ctx, "rollback", c) }},
		{UpdateBreakGlass, func(c Command) error {
			if len(c.Reason) < 3 {
				return errors.New("break-glass needs a written reason (--reason \"why this cannot wait\")")
			}
			// The policy's rules (who, incident) are checked by the handler,
			// so that a refused attempt is in the audit log too.
			return d.whileRunning(c)
		}, func(ctx workflow.Context, c Command) { d.interruptWith(ctx, "break-glass", c) }},
	}
	for _, h := range handlers {
		err := workflow.SetUpdateHandlerWithOptions(ctx, h.name,
			func(ctx workflow.Context, c Command) (DeployState, error) {
				if h.name == UpdateBreakGlass {
					// The policy's incident check may refuse after
					// validation: it calls the incident provider.
					if err := d.checkIncident(ctx, c); err != nil {
						return d.st, err
					}
				}
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

func (d *deploy) whileRunning(Command) error {
	if d.st.Phase == "done" || d.interrupt != "" {
		return fmt.Errorf("the deploy is %s; it takes no more commands (nothing changed)", d.st.Phase)
	}
	switch d.st.Phase {
	case "starting", "retiring", "rolling-back":
		return fmt.Errorf("the deploy is %s and will finish on its own (nothing changed)", d.st.Phase)
	}
	return nil
}

func (d *deploy) record(ctx workflow.Context, action string, c Command) {
	r := AuditRecord{Action: action, Who: whoOf(c), Reason: c.Reason, At: workflow.Now(ctx).UnixMilli(), Step: d.st.Step, Incident: c.Incident}
	d.res.Audit = append(d.res.Audit, r)
	if d.pol != nil {
		d.appendAudit(ctx, r)
	}
	workflow.GetLogger(ctx).Warn("audit", "action", action, "who", r.Who, "reason", c.Reason, "step", d.st.Step)
}

func (d *deploy) finding(f string) { d.res.Findings = append(d.res.Findings, f) }

func (d *deploy) interruptWith(ctx workflow.Context, what string, c Command) {
	d.record(ctx, what, c)
	d.interrupt, d.cmd = what, c
	if d.cancelWait != nil {
		d.cancelWait()
	}
	if what == "break-glass" {
		d.noteBreakGlass(ctx, c, "")
	}
}

// setPhase shows the phase in the state query, the UI's current details
// and the search attributes.
func (d *deploy) setPhase(ctx workflow.Context, phase string) {
	d.st.Phase = phase
	details := fmt.Sprintf("**%s** %s → %s, step %d of %d, weights %s",
		phase, d.st.Stable, d.st.Version, d.st.Step, d.st.Steps, activities.FormatWeights(d.st.Weights))
	if phase == "done" {
		details = fmt.Sprintf("**%s** %s → %s, weights %s", d.res.Outcome, d.st.Stable, d.st.Version, activities.FormatWeights(d.st.Weights))
		if d.res.Reason != "" {
			details += ": " + d.res.Reason
		}
	}
	workflow.SetCurrentDetails(ctx, details)
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrPhase.ValueSet(phase), AttrStep.ValueSet(int64(d.st.Step)))
	d.notePhase(ctx, phase)
}

// Kinds of provider call, each with its own deadline: one hung call must
// not hold a rollback for half an hour.
type callKind int

const (
	callRead    callKind = iota // read state, leases: quick
	callTraffic                 // a weights change, read back
	callRelease                 // deploy or promote a version: may wait on a cloud rollout
	callStop                    // stop a version: may wait for it to drain
)

// callOpts are the options of one provider call. The worker heartbeats
// every call (worker/keepalive.go), so a dead worker is noticed in seconds
// whatever the deadline.
func callOpts(summary string, kind callKind) workflow.ActivityOptions {
	o := workflow.ActivityOptions{
		Summary:          summary,
		HeartbeatTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 10,
		},
	}
	switch kind {
	case callRead, callTraffic:
		o.StartToCloseTimeout = 30 * time.Second
	case callRelease:
		o.StartToCloseTimeout = 15 * time.Minute
		o.RetryPolicy.MaximumAttempts = 5
	case callStop:
		o.StartToCloseTimeout = 5 * time.Minute
		o.ScheduleToCloseTimeout = 10 * time.Minute
	}
	return o
}

func (d *deploy) call(ctx workflow.Context, kind callKind, summary string, fn, arg, out any) error {
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, callOpts(summary, kind)), fn, arg).Get(ctx, out)
}

// opts are the options of the drill's provider calls.
func opts(summary string, maxAttempts int32) workflow.ActivityOptions {
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

// weights names the backends by version, or by role when the spec's
// traffic has fixed stable and canary backends.
func (d *deploy) weights(canary int) activities.Weights {
	if d.spec.TrafficKeys == deploys.KeysRole {
		return activities.Weights{deploys.RoleCanary: canary, deploys.RoleStable: 100 - canary}
	}
	w := activities.Weights{d.in.Version: canary}
	w[d.st.Stable] = 100 - canary
	return w
}

// canaryWeight is the canary's current share.
func (d *deploy) canaryWeight() int {
	if d.spec.TrafficKeys == deploys.KeysRole {
		return d.st.Weights[deploys.RoleCanary]
	}
	return d.st.Weights[d.in.Version]
}

func (d *deploy) shiftSummary(canary int) string {
	return fmt.Sprintf("Shift traffic: %s %d%% / %s %d%%", d.in.Version, canary, d.st.Stable, 100-canary)
}

// shift sets the canary's share. The weights are marked as possibly
// changed before the call: a call that failed may still have taken effect.
func (d *deploy) shift(ctx workflow.Context, canary int) error {
	if err := d.sizeCanary(ctx, canary); err != nil {
		return err
	}
	d.shifted = true
	return d.setWeights(ctx, d.shiftSummary(canary), canary)
}

// sizeCanary raises the canary's capacity for its next, larger share before
// it gets it (a canary Deployment on one pod must not take the whole route).
// Only releases that said so at preflight size their canary.
func (d *deploy) sizeCanary(ctx workflow.Context, canary int) error {
	if !d.canaryScales || canary <= d.canaryWeight() {
		return nil
	}
	in := activities.ScaleInput{Target: d.spec.Release, Version: d.in.Version, Weight: canary}
	var r activities.ScaleResult
	return d.call(ctx, callRelease, fmt.Sprintf("Size canary %s for %d%% of traffic", d.in.Version, canary), d.act.ScaleCanary, in, &r)
}

// setWeights gives the canary its share; the activity reads the weights
// back, so on success they are in effect.
func (d *deploy) setWeights(ctx workflow.Context, summary string, canary int) error {
	in := activities.WeightsInput{Target: d.spec.Traffic, Weights: d.weights(canary)}
	var r activities.WeightsResult
	if err := d.call(ctx, callTraffic, summary, d.act.SetWeights, in, &r); err != nil {
		return err
	}
	d.st.Weights = in.Weights
	return nil
}

// shiftBack puts all traffic on stable within the rollback budget and
// returns when it was seen there (SetWeights reads the weights back).
func (d *deploy) shiftBack(ctx workflow.Context) (int64, error) {
	in := activities.WeightsInput{Target: d.spec.Traffic, Weights: d.weights(0)}
	o := callOpts("Rollback: "+d.shiftSummary(0), callTraffic)
	o.ScheduleToCloseTimeout = rollbackBudget
	o.RetryPolicy.MaximumAttempts = 0
	o.RetryPolicy.MaximumInterval = 5 * time.Second
	var r activities.WeightsResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), d.act.SetWeights, in).Get(ctx, &r); err != nil {
		return 0, err
	}
	d.st.Weights = in.Weights
	return r.At, nil
}

// shiftRole, after a role-keyed promotion, sends all traffic to the stable
// backend (which now runs the new version).
func (d *deploy) shiftRole(ctx workflow.Context) error {
	return d.setWeights(ctx, "Stable backend (now "+d.in.Version+") takes all traffic", 0)
}

func (d *deploy) versionIn(v string) activities.VersionInput {
	return activities.VersionInput{Target: d.spec.Release, Version: v}
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

func ptr(e ending) *ending { return &e }
