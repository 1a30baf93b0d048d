package lease

import (
	"context"
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Names the lock workflow is known by. Changing any of them strands the
// locks that running workers and histories know.
const (
	LockWorkflow  = "DrillshipLease"
	updateAcquire = "acquire"
	updateRelease = "release"
	updateCheck   = "check"
	// QueryHolders returns the lock's holders ([]Holder).
	QueryHolders = "holders"
	lockIDPrefix = "drillship-lock/"
	// HeldErrorType is the application error type of a refused acquire.
	HeldErrorType = "LeaseHeld"
)

// Holder is one holder of a lock.
type Holder struct {
	ID     string `json:"id"`
	Parent string `json:"parent,omitempty"`
	What   string `json:"what,omitempty"`
	// Since is the workflow time of the grant.
	Since time.Time `json:"since"`
	// SeenRunning: the liveness check has seen the holder's workflow run.
	SeenRunning bool `json:"seenRunning,omitempty"`
}

// lockInput is the lock workflow's input, and its state across
// continue-as-new.
type lockInput struct {
	Key     string        `json:"key"`
	Holders []Holder      `json:"holders,omitempty"`
	Grace   time.Duration `json:"grace"`
	Every   time.Duration `json:"every"`
	Linger  time.Duration `json:"linger"`
	// MaxEvents is where the lock continues as new (0: defaultMaxEvents). In the
	// input, not read from a variable, so that a replay decides as the run did.
	MaxEvents int `json:"maxEvents,omitempty"`
}

type grant struct {
	Holder string `json:"holder"`
	Parent string `json:"parent,omitempty"`
	What   string `json:"what,omitempty"`
}

type granted struct {
	// Already: the holder held the key before this acquire.
	Already bool `json:"already"`
}

type heldBy struct {
	HeldBy   string `json:"heldBy"`
	HeldWhat string `json:"heldWhat,omitempty"`
}

// holderStatus is what the liveness check learns of one holder's workflow.
type holderStatus struct {
	ID string `json:"id"`
	// Status: running, closed or missing (no such workflow).
	Status    string    `json:"status"`
	CloseTime time.Time `json:"closeTime,omitempty"`
}

const (
	statusRunning = "running"
	statusClosed  = "closed"
	statusMissing = "missing"
)

// defaultMaxEvents bounds the history of one lock run: a lock held for hours
// continues as new long before the server's own suggestion.
const defaultMaxEvents = 2000

// maxEvents is what new locks get; tests shorten it.
var maxEvents = defaultMaxEvents

func (s *lockInput) find(id string) int {
	for i, h := range s.Holders {
		if h.ID == id {
			return i
		}
	}
	return -1
}

// refusal says why g cannot have the lock now, or nil: it is free, g holds
// it already (the CLI's acquire and the workflow's own are one), or g's
// parent holds it (a drill's own child deploy).
func (s *lockInput) refusal(g grant) error {
	if g.Holder == "" {
		return temporal.NewApplicationError("lease: holder is empty", "BadRequest")
	}
	if len(s.Holders) == 0 || s.find(g.Holder) >= 0 || (g.Parent != "" && s.find(g.Parent) >= 0) {
		return nil
	}
	h := s.Holders[0]
	return temporal.NewNonRetryableApplicationError("lease "+s.Key+" is held by "+h.ID, HeldErrorType, nil,
		heldBy{HeldBy: h.ID, HeldWhat: h.What})
}

func (s *lockInput) remove(id string) {
	if i := s.find(id); i >= 0 {
		s.Holders = append(s.Holders[:i:i], s.Holders[i+1:]...)
	}
}

// lockWorkflow keeps one key's lease. Grants and releases are updates; a
// loop checks that every holder's workflow is alive and drops those that are
// not, so a crashed CLI or a terminated deploy cannot leave a key held. It
// ends when nobody has held the key for Linger, and continues as new to keep
// its history short.
//
// Any change to this function must keep replaying the histories of running
// locks: gate it with workflow.GetVersion.
func lockWorkflow(ctx workflow.Context, in lockInput) error {
	st := &in
	if err := workflow.SetQueryHandler(ctx, QueryHolders, func() ([]Holder, error) { return st.Holders, nil }); err != nil {
		return err
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, updateAcquire,
		func(ctx workflow.Context, g grant) (granted, error) {
			if st.find(g.Holder) >= 0 {
				return granted{Already: true}, nil
			}
			// Updates validated in one task are applied one after the
			// other: check again against what the earlier ones granted.
			if err := st.refusal(g); err != nil {
				return granted{}, err
			}
			st.Holders = append(st.Holders, Holder{ID: g.Holder, Parent: g.Parent, What: g.What, Since: workflow.Now(ctx)})
			return granted{}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, g grant) error { return st.refusal(g) }})
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandler(ctx, updateRelease, func(ctx workflow.Context, holder string) error {
		st.remove(holder) // a non-holder's release changes nothing
		return nil
	})
	if err != nil {
		return err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 2},
	})
	// A refused acquirer that sees the holder closed asks for a check now
	// rather than waiting for the next one; the lock still decides.
	err = workflow.SetUpdateHandler(ctx, updateCheck, func(ctx workflow.Context) error {
		st.check(ctx, workflow.WithActivityOptions(ctx, workflow.GetActivityOptions(actx)))
		return nil
	})
	if err != nil {
		return err
	}
	for {
		if len(st.Holders) == 0 {
			if ok, _ := workflow.AwaitWithTimeout(ctx, st.Linger, func() bool { return len(st.Holders) > 0 }); ok {
				continue
			}
			_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
			if len(st.Holders) == 0 {
				return nil
			}
			continue
		}
		if ok, _ := workflow.AwaitWithTimeout(ctx, st.Every, func() bool { return len(st.Holders) == 0 }); ok {
			continue
		}
		st.check(ctx, actx)
		info := workflow.GetInfo(ctx)
		limit := st.MaxEvents
		if limit <= 0 {
			limit = defaultMaxEvents
		}
		if info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > limit {
			_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
			return workflow.NewContinueAsNewError(ctx, LockWorkflow, *st)
		}
	}
}

// check asks whether the holders' workflows run and drops those gone. An
// unanswered check keeps them: holding too long is safe, freeing a key that
// a live deploy holds is not.
func (st *lockInput) check(ctx, actx workflow.Context) {
	if len(st.Holders) == 0 {
		return
	}
	ids := make([]string, len(st.Holders))
	for i, h := range st.Holders {
		ids[i] = h.ID
	}
	var statuses []holderStatus
	if err := workflow.ExecuteActivity(actx, activityHolders, ids).Get(ctx, &statuses); err != nil {
		return
	}
	now := workflow.Now(ctx)
	for _, s := range statuses {
		i := st.find(s.ID)
		if i < 0 {
			continue // released while we looked
		}
		if gone(&st.Holders[i], s, now, st.Grace) {
			st.remove(s.ID)
		}
	}
}

// gone decides whether a holder no longer holds: its workflow was seen
// running and has closed (or closed after the grant, between two checks), or
// it has not appeared within the grace period after the grant (the CLI
// acquired, then died before it started the workflow). A closed run that
// ended before the grant is an earlier run of the same id, not the holder.
func gone(h *Holder, s holderStatus, now time.Time, grace time.Duration) bool {
	switch s.Status {
	case statusRunning:
		h.SeenRunning = true
		return false
	case statusClosed:
		if h.SeenRunning || !s.CloseTime.Before(h.Since) {
			return true
		}
	}
	return now.Sub(h.Since) > grace
}

const activityHolders = "LeaseHolders"

// LeaseHolders reports whether each holder's workflow runs. Registered for
// the lock workflow only.
func (a *Activities) LeaseHolders(ctx context.Context, ids []string) ([]holderStatus, error) {
	out := make([]holderStatus, 0, len(ids))
	for _, id := range ids {
		d, err := a.Client.DescribeWorkflowExecution(ctx, id, "")
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			out = append(out, holderStatus{ID: id, Status: statusMissing})
			continue
		case err != nil:
			return nil, err
		}
		info := d.GetWorkflowExecutionInfo()
		if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			out = append(out, holderStatus{ID: id, Status: statusRunning})
			continue
		}
		s := holderStatus{ID: id, Status: statusClosed}
		if ct := info.GetCloseTime(); ct != nil {
			s.CloseTime = ct.AsTime()
		}
		out = append(out, s)
	}
	return out, nil
}
