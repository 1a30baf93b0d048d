package workflows

// This is the deploy workflow as it was before the "deploy-safety" version
// (see Deploy), frozen so that runs started by older workers still replay.
// Do not change it. It can be deleted once no run of it remains open or
// within the namespace's retention; the recorded histories in
// test/testdata/deploy-*.json (v0) go with it.

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/analysis"
	"github.com/drillship/drillship/deploys"
)

// errInterruptedV0 ends a wait because a person acted.
var errInterruptedV0 = errors.New("interrupted")

type deployV0 struct {
	in    DeployInput
	spec  deploys.Spec
	st    DeployState
	res   DeployResult
	act   *activities.Activities // nil pointer: only used for method names
	audit []AuditRecord

	// interrupt is set by abort, rollback and break-glass; it ends any wait.
	interrupt  string
	cmd        Command
	approved   bool
	cancelWait workflow.CancelFunc
}

// deployV0Run runs a canary deploy: deploy the canary, step its weight up while
// watching its SLIs, promote, bake, retire; or roll back on its own.
func deployV0Run(ctx workflow.Context, in DeployInput) (DeployResult, error) {
	d := &deployV0{in: in, spec: in.Spec}
	d.st = DeployState{Service: in.Spec.Service, Version: in.Version, Steps: len(in.Spec.Steps), Phase: "starting"}
	now := workflow.Now(ctx).UnixMilli()
	d.res = DeployResult{Service: in.Spec.Service, Version: in.Version, Environment: in.Spec.Environment, StartedAt: now, CommitTime: in.CommitTime}
	if err := d.register(ctx); err != nil {
		return d.res, err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		AttrKind.ValueSet("deploy"), AttrService.ValueSet(in.Spec.Service),
		AttrVersion.ValueSet(in.Version), AttrEnvironment.ValueSet(in.Spec.Environment),
		AttrPhase.ValueSet("starting"))

	err := d.run(ctx)
	if errors.Is(err, errFinishedV0) {
		err = nil
	}
	d.res.EndedAt = workflow.Now(ctx).UnixMilli()
	d.res.DurationMs = d.res.EndedAt - d.res.StartedAt
	if d.res.CommitTime > 0 && d.res.Outcome == OutcomePromoted {
		lt := d.res.EndedAt - d.res.CommitTime
		d.res.LeadTimeMs = &lt
	}
	d.res.Audit = d.audit
	d.res.FinalWeights = d.st.Weights
	d.st.Outcome = d.res.Outcome
	d.setPhase(ctx, "done")
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrOutcome.ValueSet(d.res.Outcome))
	workflow.GetLogger(ctx).Info("deploy finished", "outcome", d.res.Outcome, "reason", d.res.Reason)
	return d.res, err
}

func (d *deployV0) register(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (DeployState, error) { return d.st, nil }); err != nil {
		return err
	}
	handlers := []struct {
		name     string
		validate func(Command) error
		apply    func(workflow.Context, Command)
	}{
		{UpdateApprove, func(Command) error {
			if d.st.Waiting == "" {
				return fmt.Errorf("nothing is waiting for approval (phase %s)", d.st.Phase)
			}
			return nil
		}, func(ctx workflow.Context, c Command) {
			d.record(ctx, "approve", c)
			d.approved = true
		}},
		{UpdatePause, d.whileRunning, func(ctx workflow.Context, c Command) {
			d.record(ctx, "pause", c)
			d.st.Paused = true
		}},
		{UpdateResume, func(Command) error {
			if err := d.whileRunning(Command{}); err != nil {
				return err
			}
			if !d.st.Paused {
				return errors.New("the deploy is not paused")
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
			return d.whileRunning(c)
		}, func(ctx workflow.Context, c Command) { d.interruptWith(ctx, "break-glass", c) }},
	}
	for _, h := range handlers {
		h := h
		err := workflow.SetUpdateHandlerWithOptions(ctx, h.name,
			func(ctx workflow.Context, c Command) (DeployState, error) {
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

func (d *deployV0) whileRunning(Command) error {
	if d.st.Phase == "done" || d.interrupt != "" {
		return fmt.Errorf("the deploy is %s; it takes no more commands", d.st.Phase)
	}
	if d.st.Phase == "promoting" || d.st.Phase == "rolling-back" || d.st.Phase == "retiring" {
		return fmt.Errorf("the deploy is %s and will finish on its own", d.st.Phase)
	}
	return nil
}

func (d *deployV0) record(ctx workflow.Context, action string, c Command) {
	who := c.Who
	if who == "" {
		who = "unknown"
	}
	r := AuditRecord{Action: action, Who: who, Reason: c.Reason, At: workflow.Now(ctx).UnixMilli(), Step: d.st.Step}
	d.audit = append(d.audit, r)
	workflow.GetLogger(ctx).Warn("audit", "action", action, "who", who, "reason", c.Reason, "step", d.st.Step)
}

func (d *deployV0) interruptWith(ctx workflow.Context, what string, c Command) {
	d.record(ctx, what, c)
	d.interrupt, d.cmd = what, c
	if d.cancelWait != nil {
		d.cancelWait()
	}
}

func (d *deployV0) setPhase(ctx workflow.Context, phase string) {
	d.st.Phase = phase
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** %s → %s, step %d/%d, weights %s",
		phase, d.st.Stable, d.st.Version, d.st.Step, d.st.Steps, activities.FormatWeights(d.st.Weights)))
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrPhase.ValueSet(phase), AttrStep.ValueSet(int64(d.st.Step)))
}

func (d *deployV0) exec(ctx workflow.Context, summary string, fn, arg, out any) error {
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, optsV0(summary, 10)), fn, arg).Get(ctx, out)
}

// mustExec retries until it works: used to put traffic back on stable, which
// must not be given up on.
func (d *deployV0) mustExec(ctx workflow.Context, summary string, fn, arg, out any) error {
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, optsV0(summary, 0)), fn, arg).Get(ctx, out)
}

// weights names the backends by version, or by role when the spec's
// traffic has fixed stable and canary backends.
func (d *deployV0) weights(canary int) activities.Weights {
	if d.spec.TrafficKeys == deploys.KeysRole {
		return activities.Weights{deploys.RoleCanary: canary, deploys.RoleStable: 100 - canary}
	}
	w := activities.Weights{d.in.Version: canary}
	w[d.st.Stable] = 100 - canary
	return w
}

// canaryWeight is the canary's current share.
func (d *deployV0) canaryWeight() int {
	if d.spec.TrafficKeys == deploys.KeysRole {
		return d.st.Weights[deploys.RoleCanary]
	}
	return d.st.Weights[d.in.Version]
}

func (d *deployV0) setWeights(ctx workflow.Context, canary int, must bool) (int64, error) {
	in := activities.WeightsInput{Target: d.spec.Traffic, Weights: d.weights(canary)}
	var r activities.WeightsResult
	summary := fmt.Sprintf("Shift traffic: %s %d%% / %s %d%%", d.in.Version, canary, d.st.Stable, 100-canary)
	run := d.exec
	if must {
		run = d.mustExec
	}
	if err := run(ctx, summary, d.act.SetWeights, in, &r); err != nil {
		return 0, err
	}
	d.st.Weights = in.Weights
	return r.At, nil
}

func (d *deployV0) run(ctx workflow.Context) error {
	var rs activities.ReleaseState
	if err := d.exec(ctx, "Read release state of "+d.spec.Service, d.act.ReleaseState, d.spec.Release, &rs); err != nil {
		return err
	}
	if rs.Stable == "" {
		return temporal.NewNonRetryableApplicationError("the release target has no stable version to compare with or roll back to", "NoStable", nil)
	}
	if rs.Stable == d.in.Version {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("version %s is already the stable version of %s", d.in.Version, d.spec.Service), "AlreadyStable", nil)
	}
	d.st.Stable, d.res.Previous = rs.Stable, rs.Stable
	d.st.Weights = d.weights(0)

	d.setPhase(ctx, "deploying")
	if err := d.exec(ctx, "Deploy canary "+d.in.Version, d.act.DeployVersion, d.versionIn(d.in.Version), nil); err != nil {
		// Nothing was shifted yet: stop what may have started and fail.
		_ = d.mustExec(ctx, "Stop canary "+d.in.Version, d.act.StopVersion, d.versionIn(d.in.Version), nil)
		d.res.Outcome, d.res.Reason = OutcomeAborted, "deploy of the canary failed: "+err.Error()
		return err
	}

	for i, step := range d.spec.Steps {
		// A person may have acted while the canary was deploying or between
		// steps: nothing more is shifted once they have.
		if d.interrupt != "" {
			return d.conclude(ctx, errInterruptedV0)
		}
		d.st.Step = i + 1
		rec := StepRecord{Weight: step.Weight, Verdict: "unwatched"}
		if step.Approval || (d.spec.Production && step.Weight == 100) {
			if err := d.waitApproval(ctx, fmt.Sprintf("step %d: shift %d%% to %s", i+1, step.Weight, d.in.Version)); err != nil {
				d.res.Steps = append(d.res.Steps, StepRecord{Weight: step.Weight, Verdict: "skipped"})
				return d.conclude(ctx, err)
			}
		}
		d.setPhase(ctx, "shifting")
		if _, err := d.setWeights(ctx, step.Weight, false); err != nil {
			return d.failAndRollback(ctx, "setting weights failed: "+err.Error(), 0)
		}
		rec.StartedAt = workflow.Now(ctx).UnixMilli()
		if step.Pause > 0 {
			rec.Verdict = analysis.Pass
			d.setPhase(ctx, "watching")
			wr, err := d.watch(ctx, step.Pause.D(), false, true)
			rec.Samples, rec.Failures, rec.Last = wr.Samples, wr.Failures, wr.Last
			rec.EndedAt = workflow.Now(ctx).UnixMilli()
			if errors.Is(err, errInterruptedV0) {
				rec.Verdict = "skipped"
				d.res.Steps = append(d.res.Steps, rec)
				return d.conclude(ctx, err)
			}
			if err != nil {
				d.res.Steps = append(d.res.Steps, rec)
				return d.failAndRollback(ctx, "analysis failed: "+err.Error(), 0)
			}
			if wr.Failed {
				rec.Verdict = analysis.Fail
				d.res.Steps = append(d.res.Steps, rec)
				if err := d.onFailedJudgement(ctx, wr); err != nil {
					return d.conclude(ctx, err)
				}
				rec.Verdict = "" // resumed and passed on a second watch; recorded once
			}
		}
		if rec.Verdict != "" {
			d.res.Steps = append(d.res.Steps, rec)
		}
		if err := d.holdWhilePaused(ctx); err != nil {
			return d.conclude(ctx, err)
		}
	}
	return d.conclude(ctx, d.promote(ctx, false))
}

func (d *deployV0) versionIn(v string) activities.VersionInput {
	return activities.VersionInput{Target: d.spec.Release, Version: v}
}

// watch runs the watch activity; forever watches until the wait is ended.
func (d *deployV0) watch(ctx workflow.Context, dur time.Duration, forever, baseline bool) (activities.WatchResult, error) {
	if d.interrupt != "" {
		return activities.WatchResult{}, errInterruptedV0
	}
	wctx, cancel := workflow.WithCancel(ctx)
	d.cancelWait = cancel
	defer func() { d.cancelWait = nil; cancel() }()
	if !forever {
		d.st.WindowEndsAt = workflow.Now(ctx).Add(dur).UnixMilli()
	}
	a := d.spec.Analysis
	in := activities.WatchInput{
		Signals: a.Target, Metrics: a.Metrics, Canary: d.in.Version, Stable: d.st.Stable,
		Interval: a.Interval.D(), Duration: dur, Forever: forever,
		FailureLimit: a.FailureLimit, MinRequests: a.MinRequests, Baseline: baseline,
	}
	ao := optsV0(fmt.Sprintf("Watch %s at %d%% for %s", d.in.Version, d.canaryWeight(), dur), 0)
	ao.StartToCloseTimeout = dur + 2*time.Minute
	if forever {
		ao.Summary = fmt.Sprintf("Watch %s at %d%% while held", d.in.Version, d.canaryWeight())
		ao.StartToCloseTimeout = 30 * 24 * time.Hour
	}
	// The watch heartbeats once per sample; the SDK sends heartbeats at most
	// every 0.8x this timeout, so a short one keeps `deploy status` live and
	// lets a new worker take over quickly after a crash.
	ao.HeartbeatTimeout = max(3*time.Second, 2*a.Interval.D()+time.Second)
	var r activities.WatchResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(wctx, ao), d.act.Watch, in).Get(wctx, &r)
	d.st.WindowEndsAt = 0
	if len(r.Last) > 0 {
		d.st.LastVerdicts = r.Last
	}
	if d.interrupt != "" {
		return r, errInterruptedV0
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) && forever {
		return r, nil // the hold ended; not a failure
	}
	return r, err
}

// hold keeps the canary watched until cond holds or a person interrupts.
// A failed judgement while held is returned as a failed WatchResult.
func (d *deployV0) hold(ctx workflow.Context, waiting string, cond func() bool) (activities.WatchResult, error) {
	d.st.Waiting = waiting
	defer func() { d.st.Waiting = "" }()
	if d.canaryWeight() == 0 {
		// Nothing to watch before the first shift.
		if err := workflow.Await(ctx, func() bool { return cond() || d.interrupt != "" }); err != nil {
			return activities.WatchResult{}, err
		}
		if d.interrupt != "" {
			return activities.WatchResult{}, errInterruptedV0
		}
		return activities.WatchResult{}, nil
	}
	// The watch is re-armed if it ever ends on its own: leaving a hold is
	// only ever the condition, a person, or a failed judgement.
	for {
		var (
			r    activities.WatchResult
			err  error
			done bool
		)
		wctx, cancel := workflow.WithCancel(ctx)
		workflow.Go(wctx, func(gctx workflow.Context) {
			r, err = d.watch(gctx, 0, true, d.canaryWeight() < 100)
			done = true
		})
		_ = workflow.Await(ctx, func() bool { return cond() || d.interrupt != "" || done })
		cancel()
		_ = workflow.Await(ctx, func() bool { return done })
		switch {
		case d.interrupt != "":
			return r, errInterruptedV0
		case r.Failed:
			return r, nil
		case cond():
			return r, nil
		case err != nil:
			return r, err
		}
	}
}

func (d *deployV0) waitApproval(ctx workflow.Context, what string) error {
	d.approved = false
	d.setPhase(ctx, "awaiting-approval")
	workflow.GetLogger(ctx).Info("waiting for approval", "for", what)
	r, err := d.hold(ctx, "approval: "+what, func() bool { return d.approved })
	if err != nil {
		return err
	}
	if r.Failed {
		return d.onFailedJudgement(ctx, r)
	}
	return nil
}

// holdWhilePaused keeps the deploy at its weight while paused. The canary
// stays watched: pausing never switches safety off.
func (d *deployV0) holdWhilePaused(ctx workflow.Context) error {
	for d.st.Paused {
		d.setPhase(ctx, "paused")
		r, err := d.hold(ctx, "", func() bool { return !d.st.Paused })
		if err != nil {
			return err
		}
		if r.Failed {
			return d.onFailedJudgement(ctx, r)
		}
	}
	return nil
}

// errFinishedV0 unwinds a deploy whose outcome is decided and recorded.
var errFinishedV0 = errors.New("finished")

// conclude carries out an interruption; other errors pass through.
func (d *deployV0) conclude(ctx workflow.Context, err error) error {
	if errors.Is(err, errInterruptedV0) {
		return d.finishInterrupted(ctx)
	}
	return err
}

// onFailedJudgement rolls back, or pauses for a person, as the spec says.
// It returns nil only when a person resumed and a second watch passed.
func (d *deployV0) onFailedJudgement(ctx workflow.Context, r activities.WatchResult) error {
	d.st.Reason = r.Reason
	if d.spec.OnFailure == "pause" {
		d.st.Paused = true
		d.setPhase(ctx, "paused-on-failure")
		workflow.GetLogger(ctx).Warn("judgement failed; paused for a person", "reason", r.Reason)
		d.st.Waiting = "decision after a failed judgement: resume (watch again), rollback, abort or break-glass"
		if err := workflow.Await(ctx, func() bool { return !d.st.Paused || d.interrupt != "" }); err != nil {
			return err
		}
		d.st.Waiting = ""
		if d.interrupt != "" {
			return errInterruptedV0
		}
		// Resumed: watch this step again before going on.
		step := d.spec.Steps[d.st.Step-1]
		wr, err := d.watch(ctx, step.Pause.D(), false, d.canaryWeight() < 100)
		if errors.Is(err, errInterruptedV0) {
			return err
		}
		if err != nil {
			return d.failAndRollback(ctx, "analysis failed: "+err.Error(), 0)
		}
		if wr.Failed {
			return d.onFailedJudgement(ctx, wr)
		}
		return nil
	}
	return d.failAndRollback(ctx, r.Reason, r.FailedAt)
}

// finishInterrupted carries out what a person asked for.
func (d *deployV0) finishInterrupted(ctx workflow.Context) error {
	switch d.interrupt {
	case "abort":
		d.rollback(ctx, "aborted by "+d.cmd.Who+reasonSuffix(d.cmd.Reason), 0)
		d.res.Outcome = OutcomeAborted
	case "rollback":
		d.rollback(ctx, "rollback requested by "+d.cmd.Who+reasonSuffix(d.cmd.Reason), 0)
	case "break-glass":
		return d.promote(ctx, true)
	}
	return errFinishedV0
}

func (d *deployV0) failAndRollback(ctx workflow.Context, reason string, failedAt int64) error {
	d.rollback(ctx, reason, failedAt)
	return errFinishedV0
}

// rollback puts all traffic back on stable first, then stops the canary.
func (d *deployV0) rollback(ctx workflow.Context, reason string, failedAt int64) {
	d.st.Reason = reason
	d.setPhase(ctx, "rolling-back")
	// Restore must run even if the workflow is being cancelled.
	rctx, _ := workflow.NewDisconnectedContext(ctx)
	at, err := d.setWeights(rctx, 0, true)
	if err == nil && failedAt > 0 {
		ttr := at - failedAt
		d.res.FailedSampleAt, d.res.RollbackAt, d.res.TimeToRollbackMs = failedAt, at, &ttr
	} else if err == nil {
		d.res.RollbackAt = at
	}
	_ = d.mustExec(rctx, "Stop canary "+d.in.Version, d.act.StopVersion, d.versionIn(d.in.Version), nil)
	d.res.Outcome, d.res.Reason = OutcomeRolledBack, reason
	workflow.GetLogger(ctx).Warn("rolled back", "reason", reason)
}

// promote shifts everything to the new version, bakes, then retires.
func (d *deployV0) promote(ctx workflow.Context, breakGlass bool) error {
	if !breakGlass {
		if d.spec.Production && d.canaryWeight() < 100 {
			if err := d.waitApproval(ctx, "promote "+d.in.Version+" to 100%"); err != nil {
				return err
			}
		}
	} else {
		d.st.Reason = "break-glass by " + d.cmd.Who + ": " + d.cmd.Reason
	}
	d.setPhase(ctx, "promoting")
	pctx, _ := workflow.NewDisconnectedContext(ctx)
	if _, err := d.setWeights(pctx, 100, false); err != nil {
		return d.failAndRollback(ctx, "promotion failed: "+err.Error(), 0)
	}
	if d.spec.Bake > 0 && !breakGlass {
		d.setPhase(ctx, "baking")
		wr, err := d.watch(ctx, d.spec.Bake.D(), false, false)
		if errors.Is(err, errInterruptedV0) {
			return err
		}
		if err != nil {
			return d.failAndRollback(ctx, "analysis failed during bake: "+err.Error(), 0)
		}
		d.res.Steps = append(d.res.Steps, StepRecord{Weight: 100, Verdict: verdictOfV0(wr), Samples: wr.Samples, Failures: wr.Failures, Last: wr.Last})
		if wr.Failed {
			return d.failAndRollback(ctx, "bake: "+wr.Reason, wr.FailedAt)
		}
	}
	d.setPhase(ctx, "retiring")
	old := d.st.Stable
	if err := d.mustExec(pctx, "Promote "+d.in.Version+" to stable", d.act.PromoteVersion, d.versionIn(d.in.Version), nil); err != nil {
		return err
	}
	if d.spec.TrafficKeys == deploys.KeysRole {
		// The stable backend now runs the new version: traffic goes back
		// to it and the canary backend is emptied.
		if _, err := d.setWeights(pctx, 0, true); err != nil {
			return err
		}
		_ = d.mustExec(pctx, "Stop canary backend", d.act.StopVersion, d.versionIn(d.in.Version), nil)
	} else {
		_ = d.mustExec(pctx, "Stop old version "+old, d.act.StopVersion, d.versionIn(old), nil)
	}
	in := activities.PruneInput{Target: d.spec.Release, Keep: d.spec.Artifacts.Keep}
	if err := d.exec(pctx, fmt.Sprintf("Keep the newest %d artifacts", in.Keep), d.act.PruneArtifacts, in, &d.res.Pruned); err != nil {
		workflow.GetLogger(ctx).Warn("pruning artifacts failed; the deploy stands", "error", err)
	}
	if d.spec.TrafficKeys != deploys.KeysRole {
		d.st.Weights = activities.Weights{d.in.Version: 100, old: 0}
	}
	d.res.Outcome = OutcomePromoted
	if breakGlass {
		d.res.Reason = d.st.Reason
	}
	return errFinishedV0
}

func verdictOfV0(r activities.WatchResult) string {
	if r.Failed {
		return analysis.Fail
	}
	return analysis.Pass
}

func optsV0(summary string, maxAttempts int32) workflow.ActivityOptions {
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
