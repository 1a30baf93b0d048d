// Package lease serialises deploys and drills per target. A lease is a
// strongly consistent lock per key ("service:web@local",
// "traffic:local/weights/version"), held by a workflow id and kept by one
// small lock workflow per key on Temporal itself: grants are updates that a
// validator refuses while another holder has the key, so two acquirers can
// never both win, and the lock drops holders whose workflow has closed or
// never started, so a crash cannot leave a key held.
package lease

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TaskQueue is where Acquire starts lock workflows: the worker's queue
// (workflows.TaskQueue; this package cannot import workflows, which calls
// it). Activities use the queue of the worker that runs them.
var TaskQueue = "drillship"

// Timing of new lock workflows (a running lock keeps the values it started
// with). Tests shorten them.
var (
	// Grace is how long a holder may take to appear after its grant: the
	// CLI acquires, then starts the workflow.
	Grace = 30 * time.Second
	// CheckEvery is how often a lock checks that its holders run.
	CheckEvery = 5 * time.Second
	// Linger is how long a free lock waits for the next acquirer before it
	// ends.
	Linger = time.Minute
)

// AcquireInput asks for every key for Holder, a workflow id. Parent, when
// set, is the holder's parent workflow id: a key the parent holds is granted.
// What says what the holder is, for the message a refused acquirer shows.
type AcquireInput struct {
	Keys   []string `json:"keys"`
	Holder string   `json:"holder"`
	Parent string   `json:"parent,omitempty"`
	What   string   `json:"what,omitempty"`
}

// AcquireResult says whether all keys were granted; when not, Key is the
// first key refused and HeldBy (What) its holder, and none of the keys this
// acquire took is still held.
type AcquireResult struct {
	Granted  bool   `json:"granted"`
	Key      string `json:"key,omitempty"`
	HeldBy   string `json:"heldBy,omitempty"`
	HeldWhat string `json:"heldWhat,omitempty"`
}

// ReleaseInput releases keys held by Holder. Keys the holder does not hold
// are left alone.
type ReleaseInput struct {
	Keys   []string `json:"keys"`
	Holder string   `json:"holder"`
}

// Activities let workflows acquire and release leases, and let lock
// workflows check their holders.
type Activities struct{ Client client.Client }

// AcquireLease acquires in.Keys for in.Holder. A refusal is a result, not an
// error: the workflow decides what a refusal means.
func (a *Activities) AcquireLease(ctx context.Context, in AcquireInput) (AcquireResult, error) {
	return acquire(ctx, a.Client, activity.GetInfo(ctx).TaskQueue, in)
}

// ReleaseLease releases in.Keys held by in.Holder.
func (a *Activities) ReleaseLease(ctx context.Context, in ReleaseInput) error {
	return Release(ctx, a.Client, in)
}

// Acquire acquires in.Keys for in.Holder, one key at a time in sorted order
// (so two acquirers of overlapping keys cannot each hold what the other
// waits for; nobody waits anyway: a held key is refused at once).
func Acquire(ctx context.Context, c client.Client, in AcquireInput) (AcquireResult, error) {
	return acquire(ctx, c, TaskQueue, in)
}

func acquire(ctx context.Context, c client.Client, taskQueue string, in AcquireInput) (AcquireResult, error) {
	if in.Holder == "" {
		return AcquireResult{}, errors.New("lease: acquire: holder is empty")
	}
	var taken []string
	undo := func() {
		if len(taken) == 0 {
			return
		}
		// The caller's context may be what failed; the release must still go out.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = Release(rctx, c, ReleaseInput{Keys: taken, Holder: in.Holder})
	}
	for _, key := range sortedUnique(in.Keys) {
		already, held, err := acquireOne(ctx, c, taskQueue, key, in)
		if err != nil {
			undo()
			return AcquireResult{}, fmt.Errorf("lease: acquire %s for %s: %w", key, in.Holder, err)
		}
		if held != nil {
			undo()
			return AcquireResult{Key: key, HeldBy: held.HeldBy, HeldWhat: held.HeldWhat}, nil
		}
		if !already {
			taken = append(taken, key)
		}
	}
	return AcquireResult{Granted: true}, nil
}

// acquireOne asks the key's lock workflow, starting it if none runs. An
// update racing the lock's end (it lingered out, or continued as new) fails
// without effect and is sent again.
func acquireOne(ctx context.Context, c client.Client, taskQueue, key string, in AcquireInput) (already bool, held *heldBy, err error) {
	rechecked := false
	for attempt := 1; ; attempt++ {
		already, held, err = tryAcquire(ctx, c, taskQueue, key, in)
		if held != nil && !rechecked && holderEnded(ctx, c, held.HeldBy) {
			// The holder has just ended (a deploy that finished a moment
			// ago): have the lock look now, then ask once more.
			rechecked = true
			if recheck(ctx, c, key) == nil {
				continue
			}
		}
		if err == nil || attempt == 5 || ctx.Err() != nil {
			return already, held, err
		}
		select {
		case <-ctx.Done():
			return false, nil, err
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}

func tryAcquire(ctx context.Context, c client.Client, taskQueue, key string, in AcquireInput) (bool, *heldBy, error) {
	start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       LockID(key),
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            "Lease on " + key,
	}, LockWorkflow, lockInput{Key: key, Grace: Grace, Every: CheckEvery, Linger: Linger, MaxEvents: maxEvents})
	h, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   updateAcquire,
			Args:         []any{grant{Holder: in.Holder, Parent: in.Parent, What: in.What}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	var res granted
	if err == nil {
		err = h.Get(ctx, &res)
	}
	if held := refusal(err); held != nil {
		return false, held, nil
	}
	if err != nil {
		return false, nil, err
	}
	return res.Already, nil, nil
}

// holderEnded reports whether the workflow id has a closed run and none
// running.
func holderEnded(ctx context.Context, c client.Client, id string) bool {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	return err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

func recheck(ctx context.Context, c client.Client, key string) error {
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: LockID(key), UpdateName: updateCheck, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return err
	}
	return h.Get(ctx, nil)
}

// refusal returns who holds the key when err is the lock's refusal.
func refusal(err error) *heldBy {
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != HeldErrorType {
		return nil
	}
	var h heldBy
	if ae.Details(&h) != nil || h.HeldBy == "" {
		// The holder is named in the message too, should details be lost.
		h.HeldBy = ae.Message()[strings.LastIndex(ae.Message(), " ")+1:]
	}
	return &h
}

// Release releases in.Keys held by in.Holder. A key without a running lock
// is free already.
func Release(ctx context.Context, c client.Client, in ReleaseInput) error {
	var errs []error
	for _, key := range sortedUnique(in.Keys) {
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID:   LockID(key),
			UpdateName:   updateRelease,
			Args:         []any{in.Holder},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = h.Get(ctx, nil)
		}
		if err != nil && !lockEnded(err) {
			errs = append(errs, fmt.Errorf("lease: release %s by %s: %w", key, in.Holder, err))
		}
	}
	return errors.Join(errs...)
}

// lockEnded reports whether err says there is no running lock workflow.
func lockEnded(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf) || strings.Contains(err.Error(), "workflow execution already completed")
}

// LockID is the workflow id of the lock of key. A long key (a cloud target's
// ARNs) is shortened to its kind and a digest: workflow ids have a length
// limit.
func LockID(key string) string {
	if len(key) <= 200 {
		return lockIDPrefix + key
	}
	head := key
	if i := strings.IndexAny(head, "{["); i >= 0 {
		head = head[:i]
	}
	sum := sha256.Sum256([]byte(key))
	return lockIDPrefix + head + "#" + hex.EncodeToString(sum[:12])
}

// Register registers the lock workflow and the activities on w; c is the
// client the activities call Temporal with.
func Register(w worker.Registry, c client.Client) {
	w.RegisterWorkflowWithOptions(lockWorkflow, workflow.RegisterOptions{Name: LockWorkflow})
	w.RegisterActivity(&Activities{Client: c})
}

// Holders returns the holders of key's lock, none when it is free.
func Holders(ctx context.Context, c client.Client, key string) ([]Holder, error) {
	v, err := c.QueryWorkflow(ctx, LockID(key), "", QueryHolders)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var hs []Holder
	return hs, v.Get(&hs)
}
