// Package watch_test runs the Watch activity against the real embedded
// Temporal server, for what the SDK's test environment cannot show: that a
// cancelled watch's samples reach the workflow as the cancellation's
// details, and that a retry on another worker resumes from the heartbeats
// the server kept.
package watch_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/analysis"
	"github.com/drillship/drillship/stack"
)

// steady is a signals provider whose canary is always healthy; it counts
// the samples it answered.
type steady struct{ n atomic.Int64 }

func (s *steady) Sample(ctx context.Context, q activities.Query) (activities.Sample, error) {
	s.n.Add(1)
	return activities.Sample{Value: 0.01, At: time.Now().UnixMilli()}, nil
}

type call struct {
	In          activities.WatchInput
	CancelAfter time.Duration
}

// watchWorkflow runs one watch as the deploy workflow does, waiting for a
// cancellation to finish so that the watch's details come back.
func watchWorkflow(ctx workflow.Context, c call) (activities.WatchResult, error) {
	actx, cancel := workflow.WithCancel(ctx)
	actx = workflow.WithActivityOptions(actx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    activities.WatchHeartbeatTimeout(c.In.Interval, c.In.SampleTimeout),
		WaitForCancellation: true,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 1},
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
		if derr := ce.Details(&r); derr != nil {
			return r, derr
		}
		return r, nil
	}
	return r, err
}

type env struct {
	c     client.Client
	sig   *steady
	queue string
}

func start(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, stack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	c, err := client.Dial(client.Options{HostPort: s.Address(), Namespace: s.Namespace()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &env{c: c, sig: &steady{}, queue: "watch-" + t.Name()}
}

// worker starts a worker with the real activities over the steady provider.
func (e *env) worker(t *testing.T) sdkworker.Worker {
	t.Helper()
	reg := activities.NewRegistry(activities.Provider{Name: "steady", Signals: func(map[string]any) (activities.Signals, error) { return e.sig, nil }})
	w := sdkworker.New(e.c, e.queue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(watchWorkflow, workflow.RegisterOptions{Name: "WatchOnce"})
	w.RegisterActivityWithOptions(activities.New(reg, nil), activity.RegisterOptions{})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(w.Stop) })
	return w
}

func input(d time.Duration, forever bool) activities.WatchInput {
	limit := 0.1
	return activities.WatchInput{
		Signals:       activities.Target{Provider: "steady"},
		Metrics:       []analysis.Metric{{Name: "errors", Metric: activities.MetricErrorRate, Max: &limit}},
		Canary:        "v2",
		Stable:        "v1",
		Interval:      100 * time.Millisecond,
		Duration:      d,
		Forever:       forever,
		Baseline:      true,
		SampleTimeout: 500 * time.Millisecond,
	}
}

func (e *env) run(t *testing.T, c call) client.WorkflowRun {
	t.Helper()
	run, err := e.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: e.queue}, "WatchOnce", c)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// A held canary's watch is cancelled when the hold ends; what it saw comes
// back to the workflow (and so to the step records) through the server.
func TestCancelledWatchReturnsWhatItSaw(t *testing.T) {
	e := start(t)
	e.worker(t)
	run := e.run(t, call{In: input(0, true), CancelAfter: 1500 * time.Millisecond})
	var r activities.WatchResult
	if err := run.Get(context.Background(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Samples < 5 || r.Conclusive != r.Samples || r.Failed || r.EndedAt < r.StartedAt || r.Attempts != 1 {
		t.Fatalf("cancelled watch returned %+v; want its samples (the provider answered %d)", r, e.sig.n.Load())
	}
}

// A worker stopping mid-window hands the window to another worker, which
// resumes from the heartbeats the server kept: the counts carry on, the time
// nobody watched is a gap, and the window is extended by it.
func TestWindowResumesOnAnotherWorker(t *testing.T) {
	e := start(t)
	first := e.worker(t)
	const window = 3 * time.Second
	run := e.run(t, call{In: input(window, false)})
	time.Sleep(time.Second)
	taken := e.sig.n.Load()
	first.Stop()
	// Nobody watches for a while, then another worker takes over.
	time.Sleep(1500 * time.Millisecond)
	e.worker(t)
	var r activities.WatchResult
	if err := run.Get(context.Background(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Failed || r.Attempts != 2 || len(r.Gaps) != 1 || r.Gaps[0].Attempt != 2 {
		t.Fatalf("%+v", r)
	}
	if r.UnobservedMs < 1000 {
		t.Fatalf("unobserved %dms; the worker was gone for 1.5s", r.UnobservedMs)
	}
	if r.Samples <= int(taken) || r.Samples > int(e.sig.n.Load()) {
		t.Fatalf("samples %d: the first worker took %d, both %d; the count must carry on", r.Samples, taken, e.sig.n.Load())
	}
	// Watched time is the window; elapsed time is that plus the gap.
	if elapsed := time.Duration(r.EndedAt-r.StartedAt) * time.Millisecond; elapsed < window+time.Duration(r.UnobservedMs)*time.Millisecond-200*time.Millisecond {
		t.Fatalf("window ran %s with %dms unobserved; want at least %s of watching", elapsed, r.UnobservedMs, window)
	}
}
