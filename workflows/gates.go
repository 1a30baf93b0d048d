package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/audit"
	"github.com/drillship/drillship/policy"
)

// The release policy's gates in a deploy (issue 14). Every call here runs
// only when d.pol is set, that is on runs with the "policy-gates" marker
// and a policy: older runs replay as they were.
//
// Freezes are decided from workflow time, as a side effect (freezeDecision)
// so that a replay on a worker with another time-zone database decides
// the same; the error budget and burn rates are read by activities and
// judged here.

const (
	phaseFrozen   = "frozen"
	interruptBurn = "burn-rate"
)

func (d *deploy) request(ctx workflow.Context) policy.Request {
	return policy.Request{Kind: policy.KindDeploy, Service: d.spec.Service, Environment: d.spec.Environment,
		Hotfix: d.in.Hotfix, Now: workflow.Now(ctx)}
}

// gateStart refuses a deploy the policy does not allow now, before
// anything changed; a hotfix passing a rule, and a break-glass overriding
// one, are recorded.
func (d *deploy) gateStart(ctx workflow.Context) *ending {
	d.res.Hotfix = d.in.Hotfix
	dec := freezeDecision(ctx, d.pol, d.request(ctx))
	if dec.Allowed && d.pol.ErrorBudget != nil {
		passed := dec.Passed
		if b := d.pol.ErrorBudget; len(b.Thresholds) > 0 {
			ratio := d.readRatios(ctx, "Policy: error budget over "+b.SLO.Window.String(), b.BudgetInput())
			if len(ratio) == 1 {
				dec = b.Budget(d.request(ctx), ratio[0])
				passed = append(passed, dec.Passed...)
			}
		}
		if dec.Allowed {
			if t, ok := d.burning(ctx, ""); ok {
				dec = policy.BurnDecision(t, "the service's")
			} else {
				dec = policy.Decision{Allowed: true, Passed: passed, Hotfix: len(passed) > 0}
			}
		}
	}
	who := Command{Who: d.in.RequestedBy, Reason: d.in.Reason, Incident: d.in.Incident}
	if !dec.Allowed {
		if d.in.Incident == "" {
			return ptr(d.refuse(ctx, "policy: "+dec.String()))
		}
		if err := d.pol.MayBreakGlass(whoOf(who), who.Reason, who.Incident); err != nil {
			return ptr(d.refuse(ctx, "policy: "+dec.String()+"; break-glass refused: "+err.Error()))
		}
		if err := d.verifyIncident(ctx, who); err != nil {
			return ptr(d.refuse(ctx, "policy: "+dec.String()+"; break-glass refused: "+err.Error()))
		}
		d.recordRule(ctx, "break-glass-start", who, dec.Rule)
		// Breaking glass overrides the freezes for this deploy, not only its
		// start; the burn-rate gates still watch the canary.
		d.thawed = true
		return nil
	}
	if d.in.Hotfix {
		rule := ""
		if len(dec.Passed) > 0 {
			rule = fmt.Sprint(dec.Passed)
		}
		d.recordRule(ctx, "hotfix", who, rule)
	}
	return nil
}

// gateShift runs before each traffic shift: a freeze in effect holds the
// canary at its weight, watched, until the window ends or a person
// approves (proceed: an override, recorded) or aborts; then a canary
// burning the budget fast is rolled back.
func (d *deploy) gateShift(ctx workflow.Context) *ending {
	for !d.thawed {
		dec := freezeDecision(ctx, d.pol, d.request(ctx))
		if dec.Allowed {
			break
		}
		if e := d.holdFrozen(ctx, dec); e != nil {
			return e
		}
	}
	if d.canaryWeight() > 0 && d.trafficSince > 0 {
		if t, ok := d.burning(ctx, d.in.Version); ok {
			return ptr(d.burnEnding(ctx, t))
		}
	}
	return nil
}

// holdFrozen holds until the freeze's window ends or a person decides.
func (d *deploy) holdFrozen(ctx workflow.Context, dec policy.Decision) *ending {
	until := time.UnixMilli(dec.Until)
	wait := max(until.Sub(workflow.Now(ctx)), time.Second)
	ended := false
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	workflow.Go(tctx, func(g workflow.Context) {
		t := workflow.NewTimerWithOptions(g, wait, workflow.TimerOptions{Summary: "Freeze: " + dec.Rule + " ends"})
		if t.Get(g, nil) == nil {
			ended = true
		}
	})
	d.approved = false
	d.st.Reason = dec.Rule + ": " + dec.Reason
	d.setPhase(ctx, phaseFrozen)
	workflow.GetLogger(ctx).Info("held by a freeze", "rule", dec.Rule, "until", until)
	e := d.hold(ctx, fmt.Sprintf("%s until %s: approve to proceed now (an override, recorded), or abort",
		dec.Rule, until.UTC().Format(time.RFC3339)), func() bool { return ended || d.approved }, true)
	d.st.Reason = ""
	if e != nil {
		return e
	}
	if d.approved && !ended {
		// The person's approval is in the record; the override names the
		// rule it passed.
		last := d.res.Audit[len(d.res.Audit)-1]
		d.recordRule(ctx, "override", Command{Who: last.Who, Reason: last.Reason}, dec.Rule)
		d.thawed = true
	}
	return nil
}

// burning reads the burn-rate gates (of version, or the service when "")
// and returns the first tripped one. A reading that fails trips nothing:
// the canary's own watch still judges it.
func (d *deploy) burning(ctx workflow.Context, version string) (policy.Burn, bool) {
	b := d.pol.ErrorBudget
	if b == nil || len(b.BurnRate) == 0 {
		return policy.Burn{}, false
	}
	what := "the service"
	if version != "" {
		what = version
	}
	rs := d.readRatios(ctx, "Policy: burn rates of "+what, b.BurnInput(version))
	burns := b.Burns(rs)
	if version != "" {
		// Evidence, not a handful of requests: a gate judges a canary only
		// once it has taken traffic for the gate's short window.
		age := time.Duration(0)
		if d.trafficSince > 0 {
			age = workflow.Now(ctx).Sub(time.UnixMilli(d.trafficSince))
		}
		for i := range burns {
			if burns[i].ShortWindow > age {
				burns[i].Tripped = false
			}
		}
	}
	return policy.Tripped(burns)
}

func (d *deploy) readRatios(ctx workflow.Context, summary string, in activities.RatiosInput) []policy.Ratio {
	var rs []activities.RatioReading
	if err := d.call(ctx, callRead, summary, d.act.ErrorRatios, in, &rs); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if !d.sliFailed {
			// Once: the burn-rate watch would repeat it every check.
			d.sliFailed = true
			d.finding("policy: reading the SLI failed (gates saw no data): " + brief(err))
		}
		out := make([]policy.Ratio, len(in.Windows))
		for i, w := range in.Windows {
			out[i] = policy.Ratio{Window: w, NoData: true, Detail: brief(err)}
		}
		return out
	}
	for _, r := range rs {
		d.burnAt = max(d.burnAt, r.At)
	}
	return policy.Ratios(rs)
}

func (d *deploy) burnEnding(ctx workflow.Context, t policy.Burn) ending {
	return ending{outcome: OutcomeRolledBack, failedAt: d.burnAt,
		reason: fmt.Sprintf("canary %s burns the error budget too fast: %s", d.in.Version, t)}
}

// watchBurn reads the canary's burn rates every checkEvery during its
// windows and the bake, and rolls it back when a gate trips, even while
// its own error rate is under its absolute threshold.
func (d *deploy) watchBurn(ctx workflow.Context) {
	b := d.pol.ErrorBudget
	if b == nil || len(b.BurnRate) == 0 {
		return
	}
	bctx, stop := workflow.WithCancel(ctx)
	d.stopBurn = stop
	over := func() bool {
		switch d.st.Phase {
		case "retiring", "rolling-back", "done":
			return true
		}
		return d.interrupt != ""
	}
	inWindow := func() bool { return d.st.Phase == "watching" || d.st.Phase == "baking" }
	workflow.Go(bctx, func(g workflow.Context) {
		for {
			// Windows and the bake only: a hold (frozen, awaiting approval,
			// paused) keeps its own watch, and a timer every checkEvery
			// through a weekend's freeze would fill the history.
			if workflow.Await(g, func() bool { return over() || inWindow() }) != nil || over() {
				return
			}
			if workflow.NewTimerWithOptions(g, b.CheckEvery.D(), workflow.TimerOptions{Summary: "Policy: next burn-rate check"}).Get(g, nil) != nil {
				return
			}
			if over() {
				return
			}
			if d.canaryWeight() == 0 || !inWindow() {
				continue
			}
			if d.trafficSince == 0 {
				// Within checkEvery of the first shift: the age counts
				// from here, erring on the side of more evidence.
				d.trafficSince = workflow.Now(g).UnixMilli()
				continue
			}
			t, ok := d.burning(g, d.in.Version)
			if !ok || g.Err() != nil || d.interrupt != "" {
				continue
			}
			e := d.burnEnding(g, t)
			workflow.GetLogger(g).Warn("burn-rate gate tripped", "reason", e.reason)
			d.interrupt, d.cmd = interruptBurn, Command{Who: "policy", Reason: e.reason}
			if d.cancelWait != nil {
				d.cancelWait()
			}
			return
		}
	})
}

// checkIncident checks a break-glass against the policy (who, an incident)
// and verifies the incident through the policy's provider; a refusal is
// recorded too.
func (d *deploy) checkIncident(ctx workflow.Context, c Command) error {
	if d.pol == nil {
		return nil
	}
	err := d.pol.MayBreakGlass(whoOf(c), c.Reason, c.Incident)
	if err == nil {
		err = d.verifyIncident(ctx, c)
	}
	if err != nil {
		d.recordRule(ctx, "break-glass-refused", Command{Who: c.Who, Reason: c.Reason + " (" + err.Error() + ")", Incident: c.Incident}, "")
		return err
	}
	return nil
}

func (d *deploy) verifyIncident(ctx workflow.Context, c Command) error {
	in := d.pol.Incident(c.Incident)
	if in == nil {
		return nil
	}
	var st activities.IncidentStatus
	if err := d.call(ctx, callRead, "Policy: is incident "+c.Incident+" open?", d.act.VerifyIncident, *in, &st); err != nil {
		return fmt.Errorf("incident %s could not be verified: %s", c.Incident, brief(err))
	}
	if !st.Open {
		return fmt.Errorf("incident %s is not open (%s)", c.Incident, st.Status)
	}
	return nil
}

// recordRule adds a policy record (hotfix, override, break-glass) to the
// workflow's record and the audit log.
func (d *deploy) recordRule(ctx workflow.Context, action string, c Command, rule string) {
	r := AuditRecord{Action: action, Who: whoOf(c), Reason: c.Reason, At: workflow.Now(ctx).UnixMilli(), Step: d.st.Step, Incident: c.Incident, Rule: rule}
	d.res.Audit = append(d.res.Audit, r)
	d.appendAudit(ctx, r)
}

// appendAudit writes r to the audit log by an activity; the deploy waits
// for the writes at its end (flushAudit), never in between.
func (d *deploy) appendAudit(ctx workflow.Context, r AuditRecord) {
	info := workflow.GetInfo(ctx)
	rec := audit.Record{
		At:     time.UnixMilli(r.At).UTC().Format(time.RFC3339Nano),
		Key:    fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, len(d.res.Audit)),
		Action: r.Action, Who: r.Who, Reason: r.Reason, Incident: r.Incident, Rule: r.Rule,
		Workflow: info.WorkflowExecution.ID, Service: d.spec.Service, Version: d.in.Version,
	}
	// A cancellation must not stop the record of the abort it caused.
	actx, _ := workflow.NewDisconnectedContext(ctx)
	o := workflow.ActivityOptions{Summary: "Audit: " + r.Action + " by " + r.Who, StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 10}}
	d.auditF = append(d.auditF, workflow.ExecuteActivity(workflow.WithActivityOptions(actx, o), d.act.AppendAudit,
		activities.AuditInput{File: d.pol.Audit.File, Record: rec}))
}

// flushAudit waits for the audit log writes; one that failed is a finding
// (the workflow's record still has it).
func (d *deploy) flushAudit(ctx workflow.Context) {
	for _, f := range d.auditF {
		if err := f.Get(ctx, nil); err != nil {
			d.finding("audit log write failed (the record is in this result): " + brief(err))
		}
	}
}

// drillFrozen refuses a drill while a freeze that blocks drills is in
// effect: the drill is recorded as refused, naming the freeze and until
// when, with nothing injected. Runs without a policy, or started before
// "policy-gates", take no marker and no decision.
func drillFrozen(ctx workflow.Context, in DrillInput) error {
	if in.Policy == nil || workflow.GetVersion(ctx, "policy-gates", workflow.DefaultVersion, 1) != 1 {
		return nil
	}
	dec := freezeDecision(ctx, in.Policy, policy.Request{Kind: policy.KindDrill, Service: in.Spec.Name, Environment: in.Spec.Environment, Now: workflow.Now(ctx)})
	if dec.Allowed {
		return nil
	}
	return refusal{msg: "policy: " + dec.String()}
}

// freezeDecision decides on the freezes as a side effect, recorded in the
// history: zones are read from the worker's time-zone database, which may
// differ between the worker that ran it and one that replays it.
func freezeDecision(ctx workflow.Context, p *policy.Policy, r policy.Request) policy.Decision {
	var dec policy.Decision
	v := workflow.SideEffect(ctx, func(workflow.Context) any { return p.Freeze(r) })
	if err := v.Get(&dec); err != nil {
		// Unreadable only if the history is damaged: refuse rather than
		// let a deploy through unchecked.
		return policy.Decision{Rule: "policy", Reason: "the freeze decision could not be read back: " + err.Error()}
	}
	return dec
}
