// Package watchtest holds what the watch tests run on a worker, in the test
// process or in a worker process of its own that a benchmark kills: a
// signals provider whose canary is always healthy, and a workflow that runs
// one watch as the deploy workflow does.
package watchtest

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/activities"
)

// Steady is a signals provider whose canary is always healthy; it counts the
// samples it answered.
type Steady struct{ N atomic.Int64 }

// Sample answers a 1% error rate, observed now.
func (s *Steady) Sample(ctx context.Context, q activities.Query) (activities.Sample, error) {
	s.N.Add(1)
	return activities.Sample{Value: 0.01, At: time.Now().UnixMilli()}, nil
}

// Call is one watch, cancelled after CancelAfter when that is set.
type Call struct {
	In          activities.WatchInput
	CancelAfter time.Duration
}

// Workflow runs one watch with the heartbeat timeout the activities package
// asks for, waiting for a cancellation to finish so that the watch's result
// comes back as the cancellation's details.
func Workflow(ctx workflow.Context, c Call) (activities.WatchResult, error) {
	actx, cancel := workflow.WithCancel(ctx)
	actx = workflow.WithActivityOptions(actx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    activities.WatchHeartbeatTimeout(c.In.Interval, c.In.SampleTimeout),
		WaitForCancellation: true,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
	})
	f := workflow.ExecuteActivity(actx, "Watch", c.In)
	if c.CancelAfter > 0 {
		workflow.Go(ctx, func(g workflow.Context) {
			_ = workflow.Sleep(g, c.CancelAfter)
			cancel()
		})
	}
	var r activities.WatchResult
	err := f.Get(ctx, &r)
	var ce *temporal.CanceledError
	if errors.As(err, &ce) {
		return r, ce.Details(&r)
	}
	return r, err
}

// NewWorker returns a worker on queue serving Workflow (as "WatchOnce") and
// the real activities over sig (as provider "steady").
func NewWorker(c client.Client, queue string, sig *Steady, o sdkworker.Options) sdkworker.Worker {
	reg := activities.NewRegistry(activities.Provider{Name: "steady", Signals: func(map[string]any) (activities.Signals, error) { return sig, nil }})
	w := sdkworker.New(c, queue, o)
	w.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: "WatchOnce"})
	w.RegisterActivityWithOptions(activities.New(reg, nil), activity.RegisterOptions{})
	return w
}
