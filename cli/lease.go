package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/drillship/drillship/lease"
	"github.com/drillship/drillship/workflows"
)

// leaseTimeout bounds the wait for the lock workflows' answer: they run on
// the worker, so without a worker the acquire would wait forever.
const leaseTimeout = 30 * time.Second

// takeLease acquires in.Keys for the workflow about to start. A refusal is
// exit 2 (nothing was started) naming the run that holds the key.
func takeLease(ctx context.Context, cl client.Client, in lease.AcquireInput) error {
	actx, cancel := context.WithTimeout(ctx, leaseTimeout)
	defer cancel()
	r, err := lease.Acquire(actx, cl, in)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("no answer from the lease of %s within %s: is a worker polling task queue %q? (%w)",
			strings.Join(in.Keys, ", "), leaseTimeout, lease.TaskQueue, err)
	}
	if err != nil {
		return err
	}
	if !r.Granted {
		return ucli.Exit(heldMessage(ctx, cl, keySubject(r.Key), r), ExitUsage)
	}
	return nil
}

// dropLease gives back a lease taken for a workflow that did not start.
func dropLease(ctx context.Context, cl client.Client, keys []string, holder string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseTimeout)
	defer cancel()
	_ = lease.Release(rctx, cl, lease.ReleaseInput{Keys: keys, Holder: holder})
}

// heldMessage says who holds a refused key, when it started and where it is:
// "web has a deploy in progress: deploy/web/v3 (started 10:04:05 UTC, phase watching)".
func heldMessage(ctx context.Context, cl client.Client, subject string, r lease.AcquireResult) string {
	kind := "run"
	switch {
	case strings.HasPrefix(r.HeldBy, "deploy/"):
		kind = "deploy"
	case strings.HasPrefix(r.HeldBy, "drill/"):
		kind = "drill"
	}
	return fmt.Sprintf("%s has a %s in progress: %s (%s)", subject, kind, r.HeldBy, holderState(ctx, cl, r.HeldBy))
}

func holderState(ctx context.Context, cl client.Client, id string) string {
	d, err := cl.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return "not started yet"
	}
	info := d.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		// Its lease lasts until the lock sees it closed or it releases.
		return "ending"
	}
	phase := ""
	if p, ok := info.GetSearchAttributes().GetIndexedFields()[workflows.AttrPhase.GetName()]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &phase)
	}
	if phase == "" {
		// Just started: the attribute is not indexed yet, the state query
		// may already answer.
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var st struct {
			Phase string `json:"phase"`
		}
		if v, err := cl.QueryWorkflow(qctx, id, "", workflows.QueryState); err == nil && v.Get(&st) == nil {
			phase = st.Phase
		}
	}
	if phase == "" {
		phase = "not reported yet"
	}
	return fmt.Sprintf("started %s, phase %s", info.GetStartTime().AsTime().UTC().Format("15:04:05 MST"), phase)
}

// keySubject names what a lease key protects, for people.
func keySubject(key string) string {
	if s, ok := strings.CutPrefix(key, "service:"); ok {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			return s[:i]
		}
		return s
	}
	if s, ok := strings.CutPrefix(key, "traffic:"); ok {
		return "traffic target " + s
	}
	return key
}
