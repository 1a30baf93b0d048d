package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/analysis"
	"github.com/drillship/drillship/lease"
	"github.com/drillship/drillship/notify"
)

// world stands in for the environment at the activity boundary: it keeps
// the state the activities would change, so tests assert outcomes
// (weights, versions, faults) rather than calls. The same activities run
// against real servers in test/.
type world struct {
	mu       sync.Mutex
	weights  activities.Weights
	stable   string
	running  []string
	faults   map[string]bool
	calls    map[string]int
	watches  []func(in activities.WatchInput) (activities.WatchResult, error)
	watchN   int
	failStop int // StopFault fails this many times first
	restored []string

	// Deploy timing and faults, set before mockDeploy.
	deployDelay  time.Duration        // DeployVersion takes this long
	windowDelay  time.Duration        // a timed watch takes this long
	failStableAt int                  // SetWeights back to stable fails (non-retryable) when > 0
	leaseHeldBy  string               // AcquireLease refuses, naming this holder
	service      string               // the service the release target says it serves
	preflight    []activities.Finding // what the providers' preflight checks find
	canaryScales bool                 // the release sizes its canary (preflight says so)
	scaleFailAt  int                  // ScaleCanary fails (non-retryable) for this weight
	// shifts logs "scale N" and "weights N" (the canary's weight) in order.
	shifts []string
	// stoppedServing counts canaries stopped while they still had traffic:
	// the invariant is that it stays 0.
	stoppedServing int
}

func newWorld() *world {
	return &world{weights: activities.Weights{"v1": 100}, stable: "v1", running: []string{"v1"}, faults: map[string]bool{}, calls: map[string]int{}}
}

func (w *world) count(name string) {
	w.mu.Lock()
	w.calls[name]++
	w.mu.Unlock()
}

var errNotYet = errors.New("not yet")

// mockPreflight answers the providers' preflight checks with w.preflight.
func (w *world) mockPreflight(env *testsuite.TestWorkflowEnvironment) {
	var a *activities.Activities
	env.OnActivity(a.Preflight, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.PreflightInput) (activities.PreflightResult, error) {
		w.count("preflight")
		r := activities.PreflightResult{Findings: w.preflight, CanaryScales: w.canaryScales}
		for _, f := range w.preflight {
			r.Refused = r.Refused || (!f.OK && f.Refuse)
		}
		return r, nil
	})
}

// mockDeploy wires the deploy activities of env to w. Watch calls are
// answered in order by w.watches (the last one repeats); a forever watch
// blocks until it is cancelled.
func (w *world) mockDeploy(env *testsuite.TestWorkflowEnvironment) {
	var a *activities.Activities
	var l *lease.Activities
	env.OnActivity(l.AcquireLease, mock.Anything, mock.Anything).Return(func(ctx context.Context, in lease.AcquireInput) (lease.AcquireResult, error) {
		w.count("lease")
		if w.leaseHeldBy != "" {
			return lease.AcquireResult{Key: in.Keys[0], HeldBy: w.leaseHeldBy}, nil
		}
		return lease.AcquireResult{Granted: true}, nil
	})
	env.OnActivity(l.ReleaseLease, mock.Anything, mock.Anything).Return(func(ctx context.Context, in lease.ReleaseInput) error {
		w.count("release")
		return nil
	})
	w.mockPreflight(env)
	env.OnActivity(a.ReleaseState, mock.Anything, mock.Anything).Return(func(ctx context.Context, t activities.Target) (activities.ReleaseState, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return activities.ReleaseState{Service: w.service, Stable: w.stable, Running: append([]string(nil), w.running...)}, nil
	})
	env.OnActivity(a.DeployVersion, mock.Anything, mock.Anything).After(w.deployDelay).Return(func(ctx context.Context, in activities.VersionInput) (int64, error) {
		w.count("deploy")
		w.mu.Lock()
		w.running = append(w.running, in.Version)
		w.mu.Unlock()
		return time.Now().UnixMilli(), nil
	})
	env.OnActivity(a.StopVersion, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.VersionInput) (int64, error) {
		w.count("stop:" + in.Version)
		w.mu.Lock()
		if w.weights[in.Version] > 0 {
			w.stoppedServing++
		}
		var keep []string
		for _, v := range w.running {
			if v != in.Version {
				keep = append(keep, v)
			}
		}
		w.running = keep
		w.mu.Unlock()
		return time.Now().UnixMilli(), nil
	})
	env.OnActivity(a.PromoteVersion, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.VersionInput) (int64, error) {
		w.count("promote")
		w.mu.Lock()
		w.stable = in.Version
		w.mu.Unlock()
		return time.Now().UnixMilli(), nil
	})
	env.OnActivity(a.PruneArtifacts, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.PruneInput) ([]string, error) {
		w.count("prune")
		return nil, nil
	})
	env.OnActivity(a.ScaleCanary, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ScaleInput) (activities.ScaleResult, error) {
		w.count("scale")
		w.mu.Lock()
		defer w.mu.Unlock()
		w.shifts = append(w.shifts, fmt.Sprintf("scale %d", in.Weight))
		if w.scaleFailAt == in.Weight {
			return activities.ScaleResult{}, temporal.NewNonRetryableApplicationError("exceeded quota: pods", "Permanent", nil)
		}
		return activities.ScaleResult{Scaled: true, Replicas: max(1, in.Weight*4/100), At: time.Now().UnixMilli()}, nil
	})
	env.OnActivity(a.SetWeights, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.WeightsInput) (activities.WeightsResult, error) {
		w.count("weights")
		w.mu.Lock()
		defer w.mu.Unlock()
		w.shifts = append(w.shifts, fmt.Sprintf("weights %d", in.Weights["v2"]))
		if w.failStableAt > 0 && in.Weights["v2"] == 0 && w.weights["v2"] > 0 {
			return activities.WeightsResult{}, temporal.NewNonRetryableApplicationError("AccessDenied: not allowed to change the weights", "Permanent", nil)
		}
		for k, v := range in.Weights {
			w.weights[k] = v
		}
		return activities.WeightsResult{Weights: in.Weights, At: 2_000_500, Changed: true, Attempt: activity.GetInfo(ctx).Attempt}, nil
	})
	// A watch while held ends on its own after an hour of workflow time (the
	// test clock only moves while no activity runs); the workflow re-arms it.
	env.OnActivity(a.Watch, mock.Anything, mock.MatchedBy(func(in activities.WatchInput) bool { return in.Forever })).
		After(time.Hour).Return(activities.WatchResult{}, nil)
	env.OnActivity(a.Watch, mock.Anything, mock.MatchedBy(func(in activities.WatchInput) bool { return !in.Forever })).After(w.windowDelay).Return(func(ctx context.Context, in activities.WatchInput) (activities.WatchResult, error) {
		w.mu.Lock()
		i := w.watchN
		w.watchN++
		var f func(activities.WatchInput) (activities.WatchResult, error)
		if len(w.watches) > 0 {
			f = w.watches[min(i, len(w.watches)-1)]
		}
		w.mu.Unlock()
		if f == nil {
			return pass(in)
		}
		return f(in)
	})
}

func pass(in activities.WatchInput) (activities.WatchResult, error) {
	return activities.WatchResult{Samples: 3, Last: []analysis.Verdict{{At: 1, Outcome: analysis.Pass}}}, nil
}

func failAt(at int64, reason string) func(activities.WatchInput) (activities.WatchResult, error) {
	return func(in activities.WatchInput) (activities.WatchResult, error) {
		return activities.WatchResult{Failed: true, FailedAt: at, Reason: reason, Samples: 2, Failures: 2,
			Last: []analysis.Verdict{{At: at, Outcome: analysis.Fail, Reason: reason}}}, nil
	}
}

func (w *world) weightsNow() activities.Weights {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := activities.Weights{}
	for k, v := range w.weights {
		out[k] = v
	}
	return out
}

func (w *world) called(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[name]
}

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(30 * time.Second)
	env.RegisterWorkflow(Deploy)
	env.RegisterWorkflow(Drill)
	env.RegisterWorkflow(Failover)
	env.RegisterActivity(&activities.Activities{})
	env.RegisterActivity(&lease.Activities{})
	env.RegisterActivity(&notify.Activities{}) // real: tests post to an httptest receiver
	return env
}
