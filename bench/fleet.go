package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/workflows"
)

const (
	fleetService   = "fleet"
	fleetWindow    = time.Second
	fleetInterval  = 250 * time.Millisecond
	fleetStarters  = 32
	workerRSSLimit = 500 << 20
)

var fleetWeights = []int{10, 50}

// fleetLevel is what one fleet size measured.
type fleetLevel struct {
	N            int      `json:"n"`
	Started      int      `json:"started"`
	Completed    int      `json:"completed"` // closed with status Completed
	Promoted     int      `json:"promoted"`
	Closed       int      `json:"closed"`
	TimedOut     bool     `json:"timedOut"`
	StartSecs    float64  `json:"startSecs"`    // to start all
	CompleteSecs float64  `json:"completeSecs"` // first start to last close (server times)
	WallSecs     float64  `json:"wallSecs"`     // client: first start call to all closed seen
	DeployP50    float64  `json:"deployMedianMs"`
	DeployP95    float64  `json:"deployP95Ms"`
	WorkerRSS    int64    `json:"workerPeakRSSBytes"`
	ServerRSS    int64    `json:"serverPeakRSSBytes"`
	Timeline     [][3]int `json:"timeline"` // [seconds since start, started, closed]
	PeakRate     float64  `json:"peakClosedPerSec"`
}

func (l fleetLevel) allDone() bool { return !l.TimedOut && l.Completed == l.N && l.Promoted == l.N }

// fleet runs many concurrent deploys on one worker process.
func (r *runner) fleet(ctx context.Context, s *Section) {
	s.Method = fmt.Sprintf("Three processes: the embedded Temporal server alone (`drillship bench serve`: SQLite in memory), one "+
		"worker (`drillship bench worker`: the real Deploy workflow and activities, SDK default worker options, registry "+
		"holding only the bench no-op provider, so the worker does the orchestration and no I/O), and this bench as the "+
		"client. The worker and server are the drillship binary itself (a separate process, hidden commands), not a "+
		"`drillship worker` (whose registry cannot hold the bench provider). Each deploy: %d steps (%v) watched %s each, "+
		"bake %s, sampled every %s, its own no-op scope. All deploys are started at once by %d client goroutines, then "+
		"visibility is polled each second. Completion time: first start to last close as the server recorded them; "+
		"workflows/s = deploys / completion time. Peak RSS = VmHWM of /proc/PID/status of each process, read before it "+
		"is stopped. Each size gets fresh server and worker processes. Sizes: %v; the next size runs only if the "+
		"previous one completed fully with worker RSS < 500MB. Targets: all complete, worker RSS < 500 MiB.",
		len(fleetWeights), fleetWeights, fleetWindow, fleetWindow, fleetInterval, fleetStarters, r.p.fleet)
	var levels []fleetLevel
	defer func() { s.Data = map[string]any{"levels": levels} }()
	for i, n := range r.p.fleet {
		timeout := min(10*time.Minute, 2*time.Minute+time.Duration(n)*50*time.Millisecond)
		l, err := r.fleetLevel(ctx, n, timeout)
		if err != nil {
			s.fail(fmt.Errorf("fleet of %d: %w", n, err))
			return
		}
		levels = append(levels, l)
		sfx := fmt.Sprintf(" (%d)", n)
		s.add("deploys"+sfx, float64(n), "deploys")
		done := l.allDone()
		s.Figures = append(s.Figures, Figure{Name: "all completed and promoted" + sfx, Value: b2f(done), Unit: "bool", Target: "all", Met: &done})
		s.add("completed"+sfx, float64(l.Completed), "deploys")
		s.add("time to start all"+sfx, l.StartSecs, "s")
		if l.TimedOut {
			s.add("closed before the deadline"+sfx, float64(l.Closed), "deploys")
			s.add("deadline"+sfx, l.WallSecs, "s")
		} else {
			s.add("time to complete"+sfx, l.CompleteSecs, "s")
		}
		if l.CompleteSecs > 0 && !l.TimedOut {
			s.add("workflows/s"+sfx, float64(l.Completed)/l.CompleteSecs, "workflows/s")
		}
		s.add("peak closes/s (5s window)"+sfx, l.PeakRate, "workflows/s")
		s.add("deploy duration median (closed ones)"+sfx, l.DeployP50, "ms")
		s.add("deploy duration p95 (closed ones)"+sfx, l.DeployP95, "ms")
		s.target("worker peak RSS"+sfx, mib(l.WorkerRSS), "MiB", "<", mib(workerRSSLimit))
		s.add("server peak RSS"+sfx, mib(l.ServerRSS), "MiB")
		r.logf("fleet %d: completed %d promoted %d in %.1fs, worker %.0f MiB, server %.0f MiB",
			n, l.Completed, l.Promoted, l.CompleteSecs, mib(l.WorkerRSS), mib(l.ServerRSS))
		s.Notes = append(s.Notes, bendNote(l))
		if !l.allDone() || l.WorkerRSS >= workerRSSLimit {
			if i+1 < len(r.p.fleet) {
				s.Notes = append(s.Notes, fmt.Sprintf("%d not run: %d did not hold.", r.p.fleet[i+1], n))
			}
			return
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func bendNote(l fleetLevel) string {
	mean := 0.0
	if l.CompleteSecs > 0 {
		mean = float64(l.Closed) / l.CompleteSecs
	}
	floor := float64(len(fleetWeights)+1) * fleetWindow.Seconds() * 1000
	msg := fmt.Sprintf("%d deploys: %d closed (%d completed, %d promoted) in %.1fs; mean %.1f closes/s, peak %.1f/s; "+
		"a deploy takes at least %.0fms of watching alone, the median took %.0fms (p95 %.0fms)",
		l.N, l.Closed, l.Completed, l.Promoted, l.CompleteSecs, mean, l.PeakRate, floor, l.DeployP50, l.DeployP95)
	if l.TimedOut {
		msg += "; it did not finish in time: it bends here (throughput-bound on this machine)"
	} else if l.DeployP50 > 3*floor {
		msg += "; deploys queue behind each other (median > 3x the watching floor): throughput-bound here"
	}
	return msg + "."
}

func (r *runner) fleetLevel(ctx context.Context, n int, timeout time.Duration) (l fleetLevel, err error) {
	l.N = n
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Minute)
	defer cancel()
	srv, err := spawn(ctx, "server", r.o.Exe, "bench", "serve")
	if err != nil {
		return l, err
	}
	defer srv.stop(15 * time.Second)
	addr, err := srv.waitLine("address ", time.Minute)
	if err != nil {
		return l, err
	}
	wk, err := spawn(ctx, "worker", r.o.Exe, "bench", "worker", "--address", addr)
	if err != nil {
		return l, err
	}
	defer wk.stop(15 * time.Second)
	if _, err := wk.waitLine("ready", time.Minute); err != nil {
		return l, err
	}
	cl, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: sdklog.NewStructuredLogger(quiet)})
	if err != nil {
		return l, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer cl.Close()
	base, err := noopDeploySpec("", fleetWeights, fleetWindow, fleetInterval)
	if err != nil {
		return l, err
	}
	base.Service = fleetService

	r.logf("fleet %d: starting (server pid %d, worker pid %d)", n, srv.pid(), wk.pid())
	// Starting has its own context: a fleet that times out stops starting
	// while the processes stay up to be measured.
	startCtx, stopStarting := context.WithCancel(ctx)
	defer stopStarting()
	t0 := time.Now()
	var started atomic.Int64
	var startErr error
	var once sync.Once
	jobs := make(chan int)
	var wg sync.WaitGroup
	for g := 0; g < fleetStarters; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				spec := base
				v := fmt.Sprintf("f%05d", i)
				// Each deploy is its own release target (scope): an
				// environment of its own gives it its own lease, since one
				// deploy per service and environment runs at a time.
				spec.Environment = "bench-" + v
				cfg := map[string]any{"scope": v}
				spec.Traffic = activities.Target{Provider: base.Traffic.Provider, Config: cfg}
				spec.Release = activities.Target{Provider: base.Release.Provider, Config: cfg}
				if _, err := startDeploy(startCtx, cl, workflows.DeployInput{Spec: spec, Version: v, RequestedBy: "bench"}); err != nil {
					once.Do(func() { startErr = fmt.Errorf("start deploy %s: %w", v, err) })
					continue
				}
				started.Add(1)
			}
		}()
	}
	allStarted := make(chan struct{})
	go func() {
		defer close(allStarted)
		for i := 0; i < n && startCtx.Err() == nil; i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		l.StartSecs = time.Since(t0).Seconds()
	}()

	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	startsDone := false
	for {
		select {
		case <-ctx.Done():
			return l, ctx.Err()
		case <-allStarted:
			allStarted, startsDone = nil, true
			if startErr != nil && !l.TimedOut {
				return l, startErr
			}
			continue
		case <-tick.C:
		}
		total, running, err := countFleet(ctx, cl)
		if err != nil {
			return l, err
		}
		closed := max(int(total-running), 0) // visibility can list a start late
		l.Timeline = append(l.Timeline, [3]int{int(time.Since(t0).Seconds()), int(started.Load()), closed})
		if startsDone && int(total) == n && running == 0 {
			break
		}
		if time.Now().After(deadline) {
			l.TimedOut = true
			break
		}
	}
	l.WallSecs = time.Since(t0).Seconds()
	// Peak RSS before anything is stopped.
	if l.WorkerRSS, err = PeakRSS(wk.pid()); err != nil {
		return l, fmt.Errorf("worker RSS: %w", err)
	}
	if l.ServerRSS, err = PeakRSS(srv.pid()); err != nil {
		return l, fmt.Errorf("server RSS: %w", err)
	}
	if allStarted != nil { // timed out while still starting
		stopStarting()
		<-allStarted
	}
	l.Started = int(started.Load())
	l.PeakRate = peakRate(l.Timeline, 5)
	if err := listFleet(ctx, cl, &l); err != nil {
		return l, err
	}
	return l, nil
}

func countFleet(ctx context.Context, cl client.Client) (total, running int64, err error) {
	q := fmt.Sprintf("%s = '%s'", workflows.AttrService.GetName(), fleetService)
	all, err := cl.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q})
	if err != nil {
		return 0, 0, fmt.Errorf("count fleet deploys: %w", err)
	}
	run, err := cl.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q + " AND ExecutionStatus = 'Running'"})
	if err != nil {
		return 0, 0, fmt.Errorf("count running fleet deploys: %w", err)
	}
	return all.GetCount(), run.GetCount(), nil
}

// listFleet reads every fleet deploy from visibility: status, outcome, start
// and close times.
func listFleet(ctx context.Context, cl client.Client, l *fleetLevel) error {
	var first, last time.Time
	var durs []float64
	var token []byte
	dc := converter.GetDefaultDataConverter()
	for {
		resp, err := cl.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("%s = '%s'", workflows.AttrService.GetName(), fleetService), PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return fmt.Errorf("list fleet deploys: %w", err)
		}
		for _, e := range resp.Executions {
			if e.CloseTime == nil {
				continue
			}
			l.Closed++
			st, ct := e.StartTime.AsTime(), e.CloseTime.AsTime()
			if first.IsZero() || st.Before(first) {
				first = st
			}
			if ct.After(last) {
				last = ct
			}
			durs = append(durs, ms(ct.Sub(st)))
			if e.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				l.Completed++
			}
			var outcome string
			if p := e.GetSearchAttributes().GetIndexedFields()[workflows.AttrOutcome.GetName()]; p != nil {
				_ = dc.FromPayload(p, &outcome)
			}
			if outcome == workflows.OutcomePromoted {
				l.Promoted++
			}
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			break
		}
	}
	l.CompleteSecs = last.Sub(first).Seconds()
	l.DeployP50, l.DeployP95 = Median(durs), P95(durs)
	return nil
}

// peakRate is the highest closes per second over a window of w timeline steps.
func peakRate(tl [][3]int, w int) float64 {
	best := 0.0
	for i := range tl {
		j := i - w
		if j < 0 {
			continue
		}
		dt := float64(tl[i][0] - tl[j][0])
		if dt <= 0 {
			continue
		}
		best = max(best, float64(tl[i][2]-tl[j][2])/dt)
	}
	return best
}
