package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/notify"
)

// Notifications of deploys and drills (issue 14). Every send runs only on
// runs with the "notify" marker and a notifications config (d.note set);
// older runs, and runs without a config, replay as they were. A send never
// waits: the run waits for its notifications only at its very end, and
// briefly (notify.Sender).

const versionNotify = "notify"

// notifier returns the sender of a run with a notifications config; the
// marker is taken once, at the start of the run, only when there is one.
func notifier(ctx workflow.Context, cfg *notify.Config) *notify.Sender {
	if cfg == nil || workflow.GetVersion(ctx, versionNotify, workflow.DefaultVersion, 1) != 1 {
		return nil
	}
	return notify.NewSender(cfg)
}

func ms(d int64) string { return (time.Duration(d) * time.Millisecond).String() }

func stamp(at int64) string { return time.UnixMilli(at).UTC().Format(time.RFC3339Nano) }

// event is a deploy event with what every deploy event says.
func (d *deploy) event(ctx workflow.Context, typ, what, severity, title string) notify.Event {
	info := workflow.GetInfo(ctx)
	id := info.WorkflowExecution.ID
	// A deploy's workflow id is reused by a later deploy of the same
	// version: the run id keeps event ids apart.
	return notify.Event{Type: typ, ID: notify.NewID(id+"@"+info.WorkflowExecution.RunID, typ, what), Time: workflow.Now(ctx).UnixMilli(), Workflow: id,
		Service: d.spec.Service, Environment: d.spec.Environment, Version: d.in.Version, Previous: d.st.Stable,
		Severity: severity, Title: title}
}

// notePhase sends what a phase change means to people: the deploy
// started, or the canary held (awaiting approval, paused, frozen).
func (d *deploy) notePhase(ctx workflow.Context, phase string) {
	if d.note == nil {
		return
	}
	svc := d.spec.Service + " " + d.in.Version
	switch phase {
	case "deploying":
		ev := d.event(ctx, notify.DeployStarted, "", notify.Info, fmt.Sprintf("Deploy of %s started (stable %s)", svc, d.st.Stable))
		ev.Facts = []notify.Fact{{Name: "Steps", Value: d.stepsText()}}
		if by := d.in.RequestedBy; by != "" {
			ev.Facts = append(ev.Facts, notify.Fact{Name: "Requested by", Value: by})
		}
		if d.res.Hotfix {
			ev.Facts = append(ev.Facts, notify.Fact{Name: "Hotfix", Value: "yes" + reasonSuffix(d.in.Reason)})
		}
		d.note.Send(ctx, ev)
		// A break-glass at the start (a policy refusal overridden) goes to
		// everyone, like one during the deploy.
		for _, a := range d.res.Audit {
			if a.Action == "break-glass-start" {
				d.noteBreakGlass(ctx, Command{Who: a.Who, Reason: a.Reason, Incident: a.Incident}, a.Rule)
			}
		}
	case "awaiting-approval", "paused", "paused-on-failure", phaseFrozen:
		d.holds++
		why := map[string]string{"awaiting-approval": "awaiting approval", "paused": "paused by a person",
			"paused-on-failure": "paused after a failed judgement", phaseFrozen: "held by a freeze"}[phase]
		ev := d.event(ctx, notify.DeployHeld, fmt.Sprint(d.holds), notify.Info,
			fmt.Sprintf("%s held at %d%%: %s", svc, d.canaryWeight(), why))
		if phase != "awaiting-approval" {
			ev.Severity = notify.Warning
		}
		ev.Reason = d.st.Reason
		ev.Facts = []notify.Fact{{Name: "Step", Value: fmt.Sprintf("%d of %d", d.st.Step, d.st.Steps)},
			{Name: "To proceed", Value: "drillship deploy approve|resume|abort " + workflow.GetInfo(ctx).WorkflowExecution.ID}}
		d.note.Send(ctx, ev)
	}
}

func (d *deploy) stepsText() string {
	var w []string
	for _, s := range d.spec.Steps {
		w = append(w, fmt.Sprintf("%d%%", s.Weight))
	}
	return strings.Join(w, " → ")
}

// noteBreakGlass tells every channel, whatever its matchers.
func (d *deploy) noteBreakGlass(ctx workflow.Context, c Command, rule string) {
	if d.note == nil {
		return
	}
	d.breaks++
	ev := d.event(ctx, notify.DeployBreakGlass, fmt.Sprint(d.breaks), notify.Critical,
		fmt.Sprintf("BREAK-GLASS on %s %s by %s", d.spec.Service, d.in.Version, whoOf(c)))
	ev.Reason = c.Reason
	if c.Incident != "" {
		ev.Facts = append(ev.Facts, notify.Fact{Name: "Incident", Value: c.Incident})
	}
	if rule != "" {
		ev.Facts = append(ev.Facts, notify.Fact{Name: "Overrides", Value: rule})
	}
	ev.Facts = append(ev.Facts, notify.Fact{Name: "Step", Value: fmt.Sprintf("%d of %d", d.st.Step, d.st.Steps)})
	d.note.Send(ctx, ev)
}

// noteEnd sends the outcome with its numbers once the way back is done,
// then waits briefly for every notification and records them.
func (d *deploy) noteEnd(ctx workflow.Context) {
	if d.note == nil {
		return
	}
	svc := d.spec.Service + " " + d.in.Version
	r := &d.res
	var ev notify.Event
	switch r.Outcome {
	case OutcomePromoted:
		ev = d.event(ctx, notify.DeployPromoted, "", notify.Info, fmt.Sprintf("%s promoted (was %s)", svc, r.Previous))
		ev.Reason = r.Reason
		ev.Facts = []notify.Fact{{Name: "Duration", Value: ms(workflow.Now(ctx).UnixMilli() - r.StartedAt)}}
	case OutcomeRolledBack:
		ev = d.event(ctx, notify.DeployRolledBack, "", notify.Warning, fmt.Sprintf("%s rolled back to %s", svc, r.Previous))
		ev.Reason = r.Reason
		if r.FailedSampleAt > 0 {
			ev.Facts = append(ev.Facts, notify.Fact{Name: "Failing sample", Value: stamp(r.FailedSampleAt)})
		}
		if r.TimeToRollbackMs != nil {
			ev.Facts = append(ev.Facts, notify.Fact{Name: "Time to rollback", Value: ms(*r.TimeToRollbackMs)})
		}
		if r.RollbackAt > 0 {
			ev.Facts = append(ev.Facts, notify.Fact{Name: "Traffic back on stable", Value: stamp(r.RollbackAt)})
		}
		for _, s := range r.Steps {
			if s.Verdict == VerdictFail || s.Verdict == VerdictInsufficient {
				ev.Facts = append(ev.Facts, notify.Fact{Name: "Failed at", Value: fmt.Sprintf("step %d, %d%%, %d of %d samples failing", s.Step, s.Weight, s.Failures, s.Samples)})
				for _, v := range s.Last {
					if v.Outcome == VerdictFail && v.Reason != "" {
						ev.Facts = append(ev.Facts, notify.Fact{Name: "Failing sample", Value: v.Reason})
						break
					}
				}
				break
			}
		}
	case OutcomeAborted:
		ev = d.event(ctx, notify.DeployAborted, "", notify.Warning, fmt.Sprintf("%s aborted; traffic on %s", svc, r.Previous))
		ev.Reason = r.Reason
	case OutcomeRollbackFailed:
		ev = d.event(ctx, notify.DeployRollbackFailed, "", notify.Critical, fmt.Sprintf("%s: ROLLBACK FAILED, %s may still take traffic", svc, d.in.Version))
		ev.Reason = r.Reason
	default: // refused: nothing changed and nothing was announced
	}
	if ev.Type != "" {
		d.note.Send(ctx, ev)
	}
	r.Notifications = d.note.Wait(ctx)
}

// Drills.

func (d *drill) noteEvent(ctx workflow.Context, typ, what, severity, title string) notify.Event {
	return notify.Event{Type: typ, ID: notify.NewID(d.rec.ID, typ, what), Time: workflow.Now(ctx).UnixMilli(),
		Workflow: d.rec.ID, Drill: d.spec.Name, Environment: d.spec.Environment, Severity: severity, Title: title}
}

// notePhase: the drill started (its faults are being injected), and from
// then each phase past its target is announced once.
func (d *drill) notePhase(ctx workflow.Context, phase string) {
	if d.note == nil || phase != "inject" {
		return
	}
	ev := d.noteEvent(ctx, notify.DrillStarted, "", notify.Warning, fmt.Sprintf("Drill %s started: faults are being injected in %s", d.spec.Name, d.spec.Environment))
	ev.Reason = d.spec.Description
	ev.Facts = []notify.Fact{{Name: "Mode", Value: d.st.Mode}}
	if by := d.in.RequestedBy; by != "" {
		ev.Facts = append(ev.Facts, notify.Fact{Name: "Started by", Value: by})
	}
	d.note.Send(ctx, ev)
	d.armOverdue(ctx)
}

// armOverdue announces each phase still without its mark when its target
// (measured from the injection) has passed.
func (d *drill) armOverdue(ctx workflow.Context) {
	t0 := workflow.Now(ctx)
	octx, cancel := workflow.WithCancel(ctx)
	d.stopOverdue = cancel
	targets := []struct {
		phase, mark string
		target      time.Duration
	}{
		{"detection", ledger.Detected, d.spec.Targets.Detection},
		{"engagement", ledger.Engaged, d.spec.Targets.Engagement},
		{"diagnosis", ledger.Diagnosed, d.spec.Targets.Diagnosis},
		{"mitigation", ledger.Mitigated, d.spec.Targets.Mitigation},
		{"recovery", ledger.Recovered, d.spec.Targets.Recovery},
	}
	for _, t := range targets {
		if t.target <= 0 {
			continue
		}
		workflow.Go(octx, func(g workflow.Context) {
			if workflow.NewTimerWithOptions(g, t.target, workflow.TimerOptions{Summary: "Notify if " + t.phase + " is past its target"}).Get(g, nil) != nil {
				return
			}
			if d.ended || d.hasMark(t.mark) {
				return
			}
			ev := d.noteEvent(g, notify.DrillPhaseOverdue, t.phase, notify.Warning,
				fmt.Sprintf("Drill %s: %s is past its target of %s", d.spec.Name, t.phase, t.target))
			ev.Facts = []notify.Fact{{Name: "Phase now", Value: d.st.Phase}, {Name: "Since injection", Value: workflow.Now(g).Sub(t0).String()}}
			if d.st.Waiting != "" {
				ev.Facts = append(ev.Facts, notify.Fact{Name: "Waiting for", Value: d.st.Waiting})
			}
			d.note.Send(g, ev)
		})
	}
}

// noteFinished sends the outcome and the scores, then waits briefly for
// every notification and records them.
func (d *drill) noteFinished(ctx workflow.Context) {
	if d.note == nil {
		return
	}
	if d.stopOverdue != nil {
		d.stopOverdue()
	}
	// A refused drill is announced too: people told of it are not left
	// wondering why nothing happened.
	{
		sev := notify.Info
		switch d.rec.Outcome {
		case ledger.OutcomeRecovered:
		case ledger.OutcomeRestoreFailed:
			sev = notify.Critical
		default:
			sev = notify.Warning
		}
		ev := d.noteEvent(ctx, notify.DrillFinished, "", sev, fmt.Sprintf("Drill %s finished: %s", d.spec.Name, d.rec.Outcome))
		ev.Reason = d.rec.Reason
		for _, s := range d.rec.Scores {
			v := s.Status
			switch s.Status {
			case ledger.StatusMissing:
			case ledger.StatusNoGoal:
				v = ms(s.DurationMs) + " (no target)"
			default:
				v = fmt.Sprintf("%s (%s, target %s)", ms(s.DurationMs), s.Status, ms(s.TargetMs))
			}
			ev.Facts = append(ev.Facts, notify.Fact{Name: s.Phase, Value: v})
		}
		ev.Facts = append(ev.Facts, notify.Fact{Name: "Restored", Value: fmt.Sprint(d.rec.Restored)})
		d.note.Send(ctx, ev)
	}
	d.rec.Notifications = d.note.Wait(ctx)
}
