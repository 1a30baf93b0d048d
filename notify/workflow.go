package notify

import (
	"errors"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Sender fires notifications from a workflow. Send never waits: each send
// is an activity on a context the run's cancellation does not reach,
// bounded by its ScheduleToClose, watched by a goroutine of its own. Only
// Wait, at the very end of a run, waits for them, and briefly.
type Sender struct {
	cfg     *Config
	recs    []Record
	pending int
}

// NewSender returns a sender over cfg; nil cfg sends nothing.
func NewSender(cfg *Config) *Sender { return &Sender{cfg: cfg} }

// Send notifies every channel ev is for.
func (s *Sender) Send(ctx workflow.Context, ev Event) {
	if s == nil || s.cfg == nil {
		return
	}
	var a *Activities
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	for _, ch := range s.cfg.For(ev) {
		i := len(s.recs)
		s.recs = append(s.recs, Record{Event: ev.Type, Channel: ch.Name, ID: ev.ID, Status: StatusPending})
		f := workflow.ExecuteActivity(workflow.WithActivityOptions(dctx, SendOptions(ev, ch)), a.SendNotification, SendInput{Channel: ch, Event: ev})
		s.pending++
		workflow.Go(dctx, func(g workflow.Context) {
			var r SendResult
			err := f.Get(g, &r)
			s.pending--
			if err != nil {
				s.recs[i].Status, s.recs[i].Detail = StatusFailed, message(err)
				return
			}
			s.recs[i].Status, s.recs[i].Attempts = StatusOK, r.Attempts
		})
	}
}

// Wait waits up to the configured time for sends still under way and
// returns the record of every notification: those still unsent stay
// pending (they are abandoned when the run closes).
func (s *Sender) Wait(ctx workflow.Context) []Record {
	if s == nil || s.cfg == nil {
		return nil
	}
	if s.pending > 0 {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		_, _ = workflow.AwaitWithTimeout(dctx, s.cfg.Wait(), func() bool { return s.pending == 0 })
	}
	return s.Records()
}

// Records is the record so far.
func (s *Sender) Records() []Record {
	if s == nil {
		return nil
	}
	return append([]Record(nil), s.recs...)
}

func message(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var to *temporal.TimeoutError
	if errors.As(err, &to) {
		return "timed out (" + to.TimeoutType().String() + ")"
	}
	return err.Error()
}
