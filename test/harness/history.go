package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/activities"
)

// Completion is one ActivityTaskCompleted event of a workflow tree.
type Completion struct {
	Workflow string
	Activity string
	Raw      []byte // the result's first payload (JSON)
}

// TreeCompletions reads the histories of id and of its children and
// returns their completed activities, and the children's ids.
func TreeCompletions(ctx context.Context, c client.Client, id string) ([]Completion, []string, error) {
	var out []Completion
	var children []string
	err := walkTree(ctx, c, id, func(wf string, ev *historypb.HistoryEvent, activity func(int64) string) bool {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := ev.GetActivityTaskCompletedEventAttributes()
			var raw []byte
			if p := a.GetResult().GetPayloads(); len(p) > 0 {
				raw = p[0].GetData()
			}
			out = append(out, Completion{Workflow: wf, Activity: activity(a.GetScheduledEventId()), Raw: raw})
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
			children = append(children, ev.GetChildWorkflowExecutionStartedEventAttributes().GetWorkflowExecution().GetWorkflowId())
		}
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	return out, children, nil
}

// walkTree reads the histories of id and of its children, breadth first,
// and hands each event to visit with a lookup of the activity type a
// scheduled event id stands for; visit returns false to stop.
func walkTree(ctx context.Context, c client.Client, id string, visit func(wf string, ev *historypb.HistoryEvent, activity func(int64) string) bool) error {
	queue := []string{id}
	for len(queue) > 0 {
		wf := queue[0]
		queue = queue[1:]
		scheduled := map[int64]string{}
		activity := func(id int64) string { return scheduled[id] }
		it := c.GetWorkflowHistory(ctx, wf, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return err
			}
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				scheduled[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
				queue = append(queue, ev.GetChildWorkflowExecutionStartedEventAttributes().GetWorkflowExecution().GetWorkflowId())
			}
			if !visit(wf, ev, activity) {
				return nil
			}
		}
	}
	return nil
}

// WaitCompletions polls the workflow tree's histories until it holds k
// completed activities. It fails the test, saying what did complete and
// what is pending, when the workflow ends first or ctx does.
func WaitCompletions(t testing.TB, ctx context.Context, c client.Client, id string, k int) {
	t.Helper()
	var comps []Completion
	for ctx.Err() == nil {
		var err error
		comps, _, err = TreeCompletions(ctx, c, id)
		if err == nil && len(comps) >= k {
			return
		}
		if st, err := Status(ctx, c, id); err == nil && st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			// It may have completed more since the read above: read once more.
			if comps, _, err = TreeCompletions(ctx, c, id); err == nil && len(comps) >= k {
				return
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var names []string
	for _, cp := range comps {
		names = append(names, cp.Activity)
	}
	st, _ := Status(context.Background(), c, id)
	pending, _ := PendingActivities(context.Background(), c, id)
	var ended error
	if st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		ended = c.GetWorkflow(context.Background(), id, "").Get(context.Background(), nil)
	}
	t.Fatalf("%s never completed %d activities: status %s (%v), completed %d %v, pending %v", id, k, st, ended, len(comps), names, pending)
}

// WeightChanges reads the SetWeights results in the tree's histories: how
// many there were and how many reported that they changed the weights.
func WeightChanges(t testing.TB, c client.Client, id string) (calls, changed int) {
	t.Helper()
	comps, _, err := TreeCompletions(context.Background(), c, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range comps {
		if cp.Activity != "SetWeights" {
			continue
		}
		var r activities.WeightsResult
		if err := json.Unmarshal(cp.Raw, &r); err != nil {
			t.Fatalf("decode SetWeights result: %v", err)
		}
		calls++
		if r.Changed {
			changed++
		}
	}
	return calls, changed
}

// Heartbeating activities time out on a missed heartbeat within seconds;
// the others only at their StartToClose timeout.
var Heartbeating = []string{"Watch", "WaitFor", "Guard", "Workload"}

// Reaper stands in for a short StartToClose timeout: it fails the attempts
// of non-heartbeating activities that the killed worker had started, so
// that they are retried now rather than minutes later. Correctness is the
// same (the attempt may or may not have made its change, as with a
// timeout). It returns how many attempts it failed.
func Reaper(ctx context.Context, c client.Client, namespace, id string, killedAt time.Time) (reaped int) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	done := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return reaped
		case <-tick.C:
		}
		ids := []string{id}
		if d, err := c.DescribeWorkflowExecution(ctx, id, ""); err == nil {
			for _, ch := range d.GetPendingChildren() {
				ids = append(ids, ch.GetWorkflowId())
			}
		}
		for _, wf := range ids {
			d, err := c.DescribeWorkflowExecution(ctx, wf, "")
			if err != nil {
				continue
			}
			for _, pa := range d.GetPendingActivities() {
				name := pa.GetActivityType().GetName()
				key := fmt.Sprintf("%s/%s/%d", wf, pa.GetActivityId(), pa.GetAttempt())
				if pa.GetState() != enumspb.PENDING_ACTIVITY_STATE_STARTED || slices.Contains(Heartbeating, name) || done[key] {
					continue
				}
				if pa.GetLastStartedTime().AsTime().After(killedAt.Add(500 * time.Millisecond)) {
					continue // started by the new worker
				}
				err := c.CompleteActivityByID(ctx, namespace, wf, d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), pa.GetActivityId(), nil,
					fmt.Errorf("worker process killed during %s (attempt failed by the crash test)", name))
				if err == nil {
					done[key] = true
					reaped++
				}
			}
		}
	}
}

// PendingActivities lists the activities Temporal still holds pending for
// workflow id (the latest run), by type and state.
func PendingActivities(ctx context.Context, c client.Client, id string) ([]string, error) {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, pa := range d.GetPendingActivities() {
		out = append(out, fmt.Sprintf("%s (%s, attempt %d)", pa.GetActivityType().GetName(), pa.GetState(), pa.GetAttempt()))
	}
	return out, nil
}

// Status is the Temporal status of workflow id's latest run.
func Status(ctx context.Context, c client.Client, id string) (enumspb.WorkflowExecutionStatus, error) {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return 0, err
	}
	return d.GetWorkflowExecutionInfo().GetStatus(), nil
}

// Interrupted reports whether an activity named in names, anywhere in the
// workflow tree, may have lost a worker while it ran: its last attempt was a
// retry, it ended on a timeout, or it was cancelled (a guard stopped while
// its worker was gone ends so, as does every guard). A check that found its
// answer and completed on its first attempt interrupted nothing, even when
// the describe just before the SIGKILL saw it running.
func Interrupted(ctx context.Context, c client.Client, id string, names ...string) (bool, error) {
	hit := false
	err := walkTree(ctx, c, id, func(_ string, ev *historypb.HistoryEvent, activity func(int64) string) bool {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := ev.GetActivityTaskStartedEventAttributes()
			hit = a.GetAttempt() > 1 && slices.Contains(names, activity(a.GetScheduledEventId()))
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			hit = slices.Contains(names, activity(ev.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()))
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
			hit = slices.Contains(names, activity(ev.GetActivityTaskCanceledEventAttributes().GetScheduledEventId()))
		}
		return !hit
	})
	return hit && err == nil, err
}
