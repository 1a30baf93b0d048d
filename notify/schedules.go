package notify

import (
	"context"
	"errors"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// Schedules reads Temporal Schedules for the drill announcer; register a
// *Schedules (with the worker's client) on the worker.
type Schedules struct{ Client client.Client }

// ScheduleRuns is what a schedule will do next.
type ScheduleRuns struct {
	Found  bool    `json:"found"` // false: deleted, the announcer stops
	Paused bool    `json:"paused"`
	Next   []int64 `json:"next"` // next run times, Unix ms, ascending
}

// NextScheduledRuns answers the schedule's next run times, as the server
// computes them from its calendar and time zone.
func (s *Schedules) NextScheduledRuns(ctx context.Context, scheduleID string) (ScheduleRuns, error) {
	d, err := s.Client.ScheduleClient().GetHandle(ctx, scheduleID).Describe(ctx)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return ScheduleRuns{}, nil
	}
	if err != nil {
		return ScheduleRuns{}, err
	}
	r := ScheduleRuns{Found: true, Paused: d.Schedule.State != nil && d.Schedule.State.Paused}
	for _, t := range d.Info.NextActionTimes {
		r.Next = append(r.Next, t.UnixMilli())
	}
	return r, nil
}
