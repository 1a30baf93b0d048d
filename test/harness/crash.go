package harness

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/devenv"
)

// The crash matrix runs a deploy or a drill once without a crash (to learn
// how many activities it completes and how many state changes it makes),
// then once per activity boundary with the worker process SIGKILLed right
// after the k-th ActivityTaskCompleted event (counted over the workflow and
// its children), and once in the middle of a long activity. Every run must
// end in the expected state with every state change made exactly once, as
// seen by a recording proxy in front of the local environment's control
// API, and with the invariants (weights sum to 100, nothing takes traffic
// that is not running) holding at every poll. The kill points run in
// parallel, each on its own embedded stack.

// CrashScenario is what the matrix runs.
type CrashScenario struct {
	Name string
	// Setup prepares the environment before the worker starts (optional).
	Setup func(t *testing.T, env *devenv.Env)
	// Begin starts the workflow against env.
	Begin func(t *testing.T, env *devenv.Env) client.WorkflowRun
	// MidPhase is the phase during whose long activity the worker is
	// killed once.
	MidPhase string
	// Check asserts the end state and returns the outcome. kill is nil for
	// the clean run.
	Check func(t *testing.T, env *devenv.Env, run client.WorkflowRun, rec *Recorder, kill *Kill) string
}

// Kill is what a kill hit.
type Kill struct {
	At time.Time
	// Running is the activities that had started and not finished when
	// the worker died.
	Running []string
}

// Hit reports whether the kill hit a running activity of one of names.
func (k *Kill) Hit(names ...string) bool {
	for _, n := range names {
		if slices.Contains(k.Running, n) {
			return true
		}
	}
	return false
}

// CrashResult is one run's figures.
type CrashResult struct {
	Completions int
	Effects     Effects
	Reaped      int
	Outcome     string
	Dur         time.Duration
	Failed      bool
	Kill        *Kill
	Activities  []string // completed, in history order (per workflow)
}

type crashWant struct{ completions, changes int }

// running lists the started, unfinished activities of the workflow tree.
func running(ctx context.Context, c client.Client, id string) []string {
	var out []string
	ids := []string{id}
	for i := 0; i < len(ids); i++ {
		d, err := c.DescribeWorkflowExecution(ctx, ids[i], "")
		if err != nil {
			continue
		}
		for _, ch := range d.GetPendingChildren() {
			ids = append(ids, ch.GetWorkflowId())
		}
		for _, pa := range d.GetPendingActivities() {
			if pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
				out = append(out, pa.GetActivityType().GetName())
			}
		}
	}
	return out
}

// CrashRun runs sc once, killing the worker after the k-th completed
// activity (k > 0), in the middle of sc.MidPhase (k == -1), or never (0).
func crashRun(t *testing.T, sc CrashScenario, k int, want crashWant) CrashResult {
	t.Helper()
	began := time.Now()
	env := Start(t, true)
	if sc.Setup != nil {
		sc.Setup(t, env)
	}
	inv := WatchInvariants(t, env)
	rec := NewRecorder(t, env.LocalURL())
	w := StartWorkerAt(t, env, rec.URL())
	run := sc.Begin(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res := CrashResult{}
	if k != 0 {
		if k > 0 {
			WaitCompletions(t, ctx, env.Client, run.GetID(), k)
		} else {
			WaitPhase(t, env.Client, run.GetID(), sc.MidPhase)
			time.Sleep(700 * time.Millisecond) // inside the phase's activity
		}
		kill := &Kill{Running: running(ctx, env.Client, run.GetID())}
		w.Kill()
		kill.At = time.Now()
		res.Kill = kill
		rctx, stop := context.WithCancel(ctx)
		reaped := make(chan int, 1)
		go func() { reaped <- Reaper(rctx, env.Client, env.Stack.Namespace(), run.GetID(), kill.At) }()
		StartWorkerAt(t, env, rec.URL())
		res.Outcome = sc.Check(t, env, run, rec, kill)
		stop()
		res.Reaped = <-reaped
	} else {
		res.Outcome = sc.Check(t, env, run, rec, nil)
	}
	inv.Assert(t)
	comps, _, err := TreeCompletions(ctx, env.Client, run.GetID())
	if err != nil {
		t.Fatal(err)
	}
	res.Completions = len(comps)
	for _, cp := range comps {
		res.Activities = append(res.Activities, cp.Activity)
	}
	res.Effects = rec.Effects()
	if len(res.Effects.Duplicates) > 0 {
		t.Errorf("duplicated side effects: %v", res.Effects.Duplicates)
	}
	if want.completions > 0 && res.Completions != want.completions {
		t.Errorf("%d activities completed, the clean run completed %d", res.Completions, want.completions)
	}
	if want.changes > 0 && res.Effects.Changes != want.changes {
		t.Errorf("%d state changes reached the environment, the clean run made %d", res.Effects.Changes, want.changes)
	}
	res.Dur = time.Since(began)
	res.Failed = t.Failed()
	return res
}

// CrashMatrix runs the clean run, then every boundary and the mid-activity
// kill in parallel, and logs a summary line.
func CrashMatrix(t *testing.T, sc CrashScenario) {
	var clean CrashResult
	t.Run("clean", func(t *testing.T) { clean = crashRun(t, sc, 0, crashWant{}) })
	if clean.Failed || clean.Completions == 0 {
		t.Fatalf("the run without a crash failed (%d activities completed); no matrix", clean.Completions)
	}
	n := clean.Completions
	t.Logf("clean run: %s, %d activities %v, %d state changes", clean.Outcome, n, clean.Activities, clean.Effects.Changes)
	want := crashWant{completions: n, changes: clean.Effects.Changes}
	var (
		mu                             sync.Mutex
		runs, mismatches, dups, reaped int
		longest                        time.Duration
	)
	kills := make([]int, 0, n+1)
	for k := 1; k <= n; k++ {
		kills = append(kills, k)
	}
	kills = append(kills, -1)
	t.Run("kills", func(t *testing.T) {
		for _, k := range kills {
			name := fmt.Sprintf("kill-after-%d-of-%d", k, n)
			if k < 0 {
				name = "kill-during-" + sc.MidPhase
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				r := crashRun(t, sc, k, want)
				mu.Lock()
				runs++
				if r.Failed {
					mismatches++
				}
				dups += len(r.Effects.Duplicates)
				reaped += r.Reaped
				longest = max(longest, r.Dur)
				mu.Unlock()
				t.Logf("%s: outcome %s, running at the kill %v, %d activities, %d state changes (clean: %d), %d duplicated, %d harmless repeats, %d orphaned attempts failed, %s",
					name, r.Outcome, r.Kill.Running, r.Completions, r.Effects.Changes, clean.Effects.Changes, len(r.Effects.Duplicates), r.Effects.Repeats, r.Reaped, r.Dur.Round(100*time.Millisecond))
			})
		}
	})
	t.Logf("CRASH MATRIX %s: %d activities per clean run (%d state changes), %d kill points (%d boundaries + 1 mid-%s), %d runs, %d mismatches, %d duplicated side effects, %d orphaned attempts failed early, longest run %s",
		sc.Name, n, clean.Effects.Changes, len(kills), n, sc.MidPhase, runs, mismatches, dups, reaped, longest.Round(100*time.Millisecond))
}
