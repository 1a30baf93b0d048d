// Package schedule turns a drill's calendar ("first tuesday 10:00
// America/New_York") into a Temporal Schedule and manages those schedules.
package schedule

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/policy"
	"github.com/drillship/drillship/workflows"
)

var ordinals = map[string]int{"first": 1, "second": 2, "third": 3, "fourth": 4, "every": 0}

var weekdays = map[string]int{
	"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6,
	"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
}

// Calendar is a parsed calendar expression.
type Calendar struct {
	Spec client.ScheduleCalendarSpec
	Zone string
}

// Parse reads "<first|second|third|fourth|every> <weekday> <HH:MM> [zone]".
// Temporal matches a calendar when all fields match, so "first tuesday" is
// day-of-month 1-7 and day-of-week Tuesday.
func Parse(s string) (Calendar, error) {
	f := strings.Fields(strings.ToLower(strings.TrimSpace(s)))
	orig := strings.Fields(strings.TrimSpace(s))
	const allowed = `write it as "<first|second|third|fourth|every> <weekday> <HH:MM> [IANA zone]", e.g. "first tuesday 10:00 America/New_York"`
	if len(f) < 3 || len(f) > 4 {
		return Calendar{}, fmt.Errorf("calendar %q: %s", s, allowed)
	}
	ord, ok := ordinals[f[0]]
	if !ok {
		return Calendar{}, fmt.Errorf("calendar %q: %q is not first, second, third, fourth or every", s, f[0])
	}
	wd, ok := weekdays[f[1]]
	if !ok {
		return Calendar{}, fmt.Errorf("calendar %q: %q is not a weekday", s, f[1])
	}
	hm := strings.SplitN(f[2], ":", 2)
	if len(hm) != 2 {
		return Calendar{}, fmt.Errorf("calendar %q: time %q is not HH:MM", s, f[2])
	}
	h, err1 := strconv.Atoi(hm[0])
	m, err2 := strconv.Atoi(hm[1])
	if err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 {
		return Calendar{}, fmt.Errorf("calendar %q: time %q is not HH:MM between 00:00 and 23:59", s, f[2])
	}
	zone := "UTC"
	if len(orig) == 4 {
		zone = orig[3]
		if _, err := time.LoadLocation(zone); err != nil {
			return Calendar{}, fmt.Errorf("calendar %q: %q is not an IANA time zone (e.g. America/New_York, Europe/Berlin, UTC)", s, zone)
		}
	}
	spec := client.ScheduleCalendarSpec{
		Second:    []client.ScheduleRange{{Start: 0}},
		Minute:    []client.ScheduleRange{{Start: m}},
		Hour:      []client.ScheduleRange{{Start: h}},
		DayOfWeek: []client.ScheduleRange{{Start: wd}},
		Comment:   s,
	}
	if ord > 0 {
		spec.DayOfMonth = []client.ScheduleRange{{Start: 7*(ord-1) + 1, End: 7 * ord}}
	} else {
		spec.DayOfMonth = []client.ScheduleRange{{Start: 1, End: 31}}
	}
	spec.Month = []client.ScheduleRange{{Start: 1, End: 12}}
	return Calendar{Spec: spec, Zone: zone}, nil
}

// Validate checks a calendar expression.
func Validate(s string) error {
	_, err := Parse(s)
	return err
}

// ID is the schedule id of a drill.
func ID(drill string) string { return "drill-schedule/" + drill }

// Create makes (or replaces) the schedule that runs spec on calendar.
func Create(ctx context.Context, c client.Client, spec *drills.Spec, calendar, reportDir string) (string, error) {
	return CreateWithPolicy(ctx, c, spec, calendar, reportDir, nil)
}

// CreateWithPolicy is Create with a release policy: each scheduled run
// checks its drill freezes and is refused, with the freeze recorded, while
// one is in effect.
func CreateWithPolicy(ctx context.Context, c client.Client, spec *drills.Spec, calendar, reportDir string, pol *policy.Policy) (string, error) {
	cal, err := Parse(calendar)
	if err != nil {
		return "", err
	}
	id := ID(spec.Name)
	sc := c.ScheduleClient()
	// Replace rather than fail: re-running `schedule create` after editing
	// the spec is what people do.
	// A missing schedule is the usual case; any other error shows at Create.
	_ = sc.GetHandle(ctx, id).Delete(ctx)
	_, err = sc.Create(ctx, client.ScheduleOptions{
		ID: id,
		Spec: client.ScheduleSpec{
			Calendars:    []client.ScheduleCalendarSpec{cal.Spec},
			TimeZoneName: cal.Zone,
		},
		Action: &client.ScheduleWorkflowAction{
			ID:        "drill/" + spec.Name + "/scheduled",
			Workflow:  "Drill",
			Args:      []any{workflows.DrillInput{Spec: *spec, RequestedBy: "schedule " + id, ReportDir: reportDir, Policy: pol}},
			TaskQueue: workflows.TaskQueue,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				workflows.AttrKind.ValueSet("drill"), workflows.AttrScenario.ValueSet(spec.Name),
				workflows.AttrEnvironment.ValueSet(spec.Environment)),
			StaticSummary: "Scheduled drill " + spec.Name + " (" + calendar + ")",
		},
		// A drill still running when the next one is due is not doubled up,
		// and a server down for a day does not fire a backlog of drills.
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: time.Hour,
		Note:          "created by drillship for " + spec.Name,
	})
	if err != nil {
		return "", fmt.Errorf("create schedule %s: %w", id, err)
	}
	// Announcements ahead of the runs (policy notifications.announce).
	if err := announce(ctx, c, id, spec, cal.Zone, pol); err != nil {
		return id, err
	}
	return id, nil
}

// Entry is one schedule with its next runs.
type Entry struct {
	ID       string      `json:"id"`
	Calendar string      `json:"calendar"`
	Zone     string      `json:"zone"`
	Next     []time.Time `json:"next"`
	Paused   bool        `json:"paused"`
	Recent   int         `json:"recentRuns"`
}

// List returns drillship's schedules with their next run times.
func List(ctx context.Context, c client.Client) ([]Entry, error) {
	it, err := c.ScheduleClient().List(ctx, client.ScheduleListOptions{PageSize: 100})
	if err != nil {
		return nil, err
	}
	var out []Entry
	for it.HasNext() {
		s, err := it.Next()
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(s.ID, "drill-schedule/") {
			continue
		}
		d, err := c.ScheduleClient().GetHandle(ctx, s.ID).Describe(ctx)
		if err != nil {
			return nil, err
		}
		e := Entry{ID: s.ID, Next: d.Info.NextActionTimes, Paused: d.Schedule.State.Paused, Recent: len(d.Info.RecentActions)}
		if sp := d.Schedule.Spec; sp != nil {
			e.Zone = sp.TimeZoneName
			for _, cal := range sp.Calendars {
				e.Calendar = cal.Comment
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// Delete removes a drill's schedule.
func Delete(ctx context.Context, c client.Client, drill string) error {
	if err := c.ScheduleClient().GetHandle(ctx, ID(drill)).Delete(ctx); err != nil {
		return fmt.Errorf("delete schedule %s: %w", ID(drill), err)
	}
	// Its announcer would notice within the hour; no announcement after
	// a delete.
	return stopAnnouncer(ctx, c, ID(drill), "the schedule was deleted")
}

// Trigger runs a drill's schedule now (the overlap policy still applies).
func Trigger(ctx context.Context, c client.Client, drill string) error {
	err := c.ScheduleClient().GetHandle(ctx, ID(drill)).Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP})
	if err != nil {
		return fmt.Errorf("trigger schedule %s: %w", ID(drill), err)
	}
	return nil
}
