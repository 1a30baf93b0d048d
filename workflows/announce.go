package workflows

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/notify"
)

// Drill announcements: "something will fail tomorrow". One small workflow
// per drill schedule (started by `drill schedule create` when the policy's
// notifications give announce lead times) asks the Temporal Schedule for
// its next run times, sleeps until the next lead time before one of them
// (e.g. 48h and 1h before), announces it, and asks again. It asks at least
// hourly, so a schedule edited, paused or deleted is followed; it ends
// when the schedule is gone.

// AnnounceInput starts the announcer of one drill schedule.
type AnnounceInput struct {
	ScheduleID  string        `json:"scheduleId"`
	Drill       string        `json:"drill"`
	Environment string        `json:"environment,omitempty"`
	Description string        `json:"description,omitempty"`
	Zone        string        `json:"zone,omitempty"` // the calendar's zone, for the message
	Config      notify.Config `json:"config"`
	// Announced: "run/lead" keys already announced, carried across
	// continue-as-new so nothing is announced twice.
	Announced []string `json:"announced,omitempty"`
}

// AnnouncerID is the workflow id of a schedule's announcer.
func AnnouncerID(scheduleID string) string { return "announce/" + scheduleID }

// announceRecheck bounds every sleep: a schedule changed meanwhile is seen
// within it.
const announceRecheck = time.Hour

// DrillAnnouncer announces a schedule's drills ahead of time.
func DrillAnnouncer(ctx workflow.Context, in AnnounceInput) error {
	s := notify.NewSender(&in.Config)
	done := map[string]bool{}
	for _, k := range in.Announced {
		done[k] = true
	}
	var leads []time.Duration
	for _, d := range in.Config.Announce {
		leads = append(leads, d.D())
	}
	slices.Sort(leads)
	slices.Reverse(leads) // longest first: 48h, then 1h
	loc, err := time.LoadLocation(in.Zone)
	if err != nil || in.Zone == "" {
		loc = time.UTC
	}
	var sa *notify.Schedules
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		Summary: "Next runs of " + in.ScheduleID, StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5},
	})
	// A bounded history: continue as new after this many checks.
	for range 200 {
		var r notify.ScheduleRuns
		if err := workflow.ExecuteActivity(actx, sa.NextScheduledRuns, in.ScheduleID).Get(ctx, &r); err != nil {
			workflow.GetLogger(ctx).Warn("reading the schedule failed; trying again later", "error", err)
			if workflow.Sleep(ctx, 5*time.Minute) != nil {
				return nil
			}
			continue
		}
		if !r.Found {
			s.Wait(ctx)
			return nil
		}
		now := workflow.Now(ctx)
		wake := now.Add(announceRecheck)
		for _, ms := range r.Next {
			run := time.UnixMilli(ms)
			if !run.After(now) {
				continue
			}
			var due []string
			for _, l := range leads {
				k := strconv.FormatInt(ms, 10) + "/" + l.String()
				at := run.Add(-l)
				switch {
				case done[k]:
				case !at.After(now):
					due = append(due, k)
				case at.Before(wake):
					wake = at
				}
			}
			if len(due) == 0 || r.Paused {
				continue
			}
			// Every lead already passed is one announcement (a schedule
			// made 30h ahead is announced once now, and again 1h ahead).
			for _, k := range due {
				done[k] = true
			}
			ev := notify.Event{Type: notify.DrillAnnounced, ID: notify.NewID(in.ScheduleID, notify.DrillAnnounced, due[len(due)-1]),
				Time: now.UnixMilli(), Workflow: workflow.GetInfo(ctx).WorkflowExecution.ID, Drill: in.Drill,
				Environment: in.Environment, Severity: notify.Info,
				Title: fmt.Sprintf("Drill %s will run in %s, at %s: faults will be injected in %s",
					in.Drill, run.Sub(now).Round(time.Minute), run.In(loc).Format("Mon 2006-01-02 15:04 MST"), orAll(in.Environment)),
				Reason: in.Description,
				Facts: []notify.Fact{{Name: "Scheduled at", Value: run.UTC().Format(time.RFC3339)},
					{Name: "Schedule", Value: in.ScheduleID}}}
			s.Send(ctx, ev)
		}
		//workflowcheck:ignore (deletes old keys: the order does not matter)
		for k := range done {
			if ms, err := strconv.ParseInt(k[:slices.Index([]byte(k), '/')], 10, 64); err == nil && ms < now.Add(-24*time.Hour).UnixMilli() {
				delete(done, k)
			}
		}
		if workflow.Sleep(ctx, wake.Sub(now)) != nil {
			return nil
		}
	}
	s.Wait(ctx)
	in.Announced = in.Announced[:0]
	//workflowcheck:ignore (sorted below)
	for k := range done {
		in.Announced = append(in.Announced, k)
	}
	slices.Sort(in.Announced) // map order is random: keep the input deterministic
	return workflow.NewContinueAsNewError(ctx, DrillAnnouncer, in)
}

func orAll(env string) string {
	if env == "" {
		return "its environment"
	}
	return env
}
