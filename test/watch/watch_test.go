// Package watch_test runs the Watch activity against the real embedded
// Temporal server, for what the SDK's test environment cannot show: that a
// cancelled watch's samples reach the workflow as the cancellation's
// details, and that a retry on another worker resumes from the heartbeats
// the server kept.
package watch_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/analysis"
	"github.com/drillship/drillship/stack"
	"github.com/drillship/drillship/test/watch/watchtest"
)

type env struct {
	s     *stack.Stack
	c     client.Client
	sig   *watchtest.Steady
	queue string
}

func start(t testing.TB) *env {
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
	return &env{s: s, c: c, sig: &watchtest.Steady{}, queue: "watch-" + t.Name()}
}

// worker starts a worker in this process with the real activities over the
// steady provider.
func (e *env) worker(t *testing.T) sdkworker.Worker {
	t.Helper()
	w := watchtest.NewWorker(e.c, e.queue, e.sig, sdkworker.Options{})
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

func (e *env) run(t testing.TB, c watchtest.Call) client.WorkflowRun {
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
	run := e.run(t, watchtest.Call{In: input(0, true), CancelAfter: 1500 * time.Millisecond})
	var r activities.WatchResult
	if err := run.Get(context.Background(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Samples < 5 || r.Conclusive != r.Samples || r.Failed || r.EndedAt < r.StartedAt || r.Attempts != 1 {
		t.Fatalf("cancelled watch returned %+v; want its samples (the provider answered %d)", r, e.sig.N.Load())
	}
}

// A worker stopping mid-window hands the window to another worker, which
// resumes from the heartbeats the server kept: the counts carry on, the time
// nobody watched is a gap, and the window is extended by it.
func TestWindowResumesOnAnotherWorker(t *testing.T) {
	e := start(t)
	first := e.worker(t)
	const window = 3 * time.Second
	run := e.run(t, watchtest.Call{In: input(window, false)})
	time.Sleep(time.Second)
	taken := e.sig.N.Load()
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
	if r.Samples <= int(taken) || r.Samples > int(e.sig.N.Load()) {
		t.Fatalf("samples %d: the first worker took %d, both %d; the count must carry on", r.Samples, taken, e.sig.N.Load())
	}
	// Watched time is the window; elapsed time is that plus the gap.
	if elapsed := time.Duration(r.EndedAt-r.StartedAt) * time.Millisecond; elapsed < window+time.Duration(r.UnobservedMs)*time.Millisecond-200*time.Millisecond {
		t.Fatalf("window ran %s with %dms unobserved; want at least %s of watching", elapsed, r.UnobservedMs, window)
	}
}

// BenchmarkWorkerKillDuringWatch measures what a SIGKILL of the worker
// holding a watch costs: a worker process takes the watch, a standby worker
// process polls beside it, and the first is killed at a different point of
// the window each time. It reports the unobserved time the retry recorded
// (median and max) and the time from the kill to the standby's first sample.
// Run: go test ./test/watch -run '^$' -bench WorkerKill -benchtime 1x
// (-heartbeat-throttle: the workers' MaxHeartbeatThrottleInterval).
func BenchmarkWorkerKillDuringWatch(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "watch-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "./watchtest/worker").CombinedOutput(); err != nil {
		b.Fatalf("build the worker: %v\n%s", err, out)
	}
	e := start(b)
	const (
		kills    = 10
		interval = time.Second
		window   = 8 * time.Second
	)
	in := input(window, false)
	in.Interval, in.SampleTimeout = interval, 2*time.Second
	hb := activities.WatchHeartbeatTimeout(in.Interval, in.SampleTimeout)
	for range b.N {
		var unobserved, resumed []time.Duration
		for k := range kills {
			queue := fmt.Sprintf("%s-%d", e.queue, k)
			worker := func() *exec.Cmd {
				cmd := exec.Command(bin, "-address", e.s.Address(), "-namespace", e.s.Namespace(), "-queue", queue,
					"-heartbeat-throttle", *throttle)
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				return cmd
			}
			holder := worker()
			run, err := e.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, "WatchOnce", watchtest.Call{In: in})
			if err != nil {
				b.Fatal(err)
			}
			started := waitStarted(b, e.c, run.GetID())
			standby := worker()
			// Kill points spread over the window's first 6s.
			time.Sleep(time.Until(started.Add(1500*time.Millisecond + time.Duration(k)*450*time.Millisecond)))
			_ = holder.Process.Kill()
			killedAt := time.Now()
			_ = holder.Wait()
			var r activities.WatchResult
			err = run.Get(context.Background(), &r)
			_ = standby.Process.Kill()
			_ = standby.Wait()
			if err != nil {
				b.Fatal(err)
			}
			if r.Failed || r.Attempts != 2 || len(r.Gaps) != 1 {
				b.Fatalf("kill %d: %+v", k, r)
			}
			g := r.Gaps[0]
			unobserved = append(unobserved, time.Duration(r.UnobservedMs)*time.Millisecond)
			// The resumed attempt samples one interval after it starts.
			resumed = append(resumed, time.UnixMilli(g.To).Add(interval).Sub(killedAt))
			if watched := time.Duration(r.EndedAt-r.StartedAt-r.UnobservedMs) * time.Millisecond; watched < window-interval {
				b.Errorf("kill %d: watched %s of a %s window", k, watched, window)
			}
		}
		slices.Sort(unobserved)
		slices.Sort(resumed)
		b.Logf("interval %s, heartbeat timeout %s, throttle %q: unobserved %v; kill to sampling again %v", interval, hb, *throttle, unobserved, resumed)
		b.ReportMetric(float64(unobserved[kills/2].Milliseconds()), "unobserved-median-ms")
		b.ReportMetric(float64(unobserved[kills-1].Milliseconds()), "unobserved-max-ms")
		b.ReportMetric(float64(resumed[kills/2].Milliseconds()), "kill-to-sample-median-ms")
		b.ReportMetric(float64(resumed[kills-1].Milliseconds()), "kill-to-sample-max-ms")
	}
}

var throttle = flag.String("heartbeat-throttle", "0s", "the benchmark workers' MaxHeartbeatThrottleInterval (0s: the SDK's default)")

// waitStarted waits until the workflow's watch has started on a worker and
// returns when it did.
func waitStarted(t testing.TB, c client.Client, id string) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		d, err := c.DescribeWorkflowExecution(context.Background(), id, "")
		if err == nil {
			for _, pa := range d.GetPendingActivities() {
				if pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
					return pa.GetLastStartedTime().AsTime()
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the watch never started")
	return time.Time{}
}
