// Package crash runs deploys and drills with their worker process SIGKILLed at every activity boundary.
package crash

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/specfile"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

// The crash matrix runs a deploy and a drill once without a crash (to learn
// how many activities they complete), then once per activity boundary with
// the worker process SIGKILLed right after the k-th ActivityTaskCompleted
// event (counted over the workflow and its children), and once in the middle
// of a long activity. Every run must end in the expected state with every
// state change made exactly once, as seen by a recording proxy in front of
// the local environment's control API.

// crashScenario is what the matrix runs.
type crashScenario struct {
	name string
	// begin starts the workflow against env.
	begin func(t *testing.T, env *devenv.Env) client.WorkflowRun
	// midPhase is the phase during whose long activity the worker is
	// killed once.
	midPhase string
	// check asserts the end state; it returns the workflow's outcome.
	check func(t *testing.T, env *devenv.Env, run client.WorkflowRun) string
	// wantChanges is the number of state changes a clean run makes.
	wantChanges int
	// wantCompletions is the number of activities a clean run completes
	// (learnt from it); a crash must not add or lose one.
	wantCompletions int
}

// crashResult is one run's figures.
type crashResult struct {
	completions int
	effects     harness.Effects
	reaped      int
	outcome     string
	dur         time.Duration
	failed      bool
}

// crashRun runs sc once, killing the worker after the k-th completed
// activity (k > 0), in the middle of sc.midPhase (k == -1), or never (0).
func crashRun(t *testing.T, sc crashScenario, k int) crashResult {
	t.Helper()
	began := time.Now()
	env := harness.Start(t, true)
	rec := harness.NewRecorder(t, env.LocalURL())
	w := harness.StartWorkerAt(t, env, rec.URL())
	run := sc.begin(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res := crashResult{}
	if k != 0 {
		if k > 0 {
			harness.WaitCompletions(t, ctx, env.Client, run.GetID(), k)
		} else {
			harness.WaitPhase(t, env.Client, run.GetID(), sc.midPhase)
			time.Sleep(700 * time.Millisecond) // inside the phase's activity
		}
		w.Kill()
		killedAt := time.Now()
		rctx, stop := context.WithCancel(ctx)
		reaped := make(chan int, 1)
		go func() { reaped <- harness.Reaper(rctx, env.Client, env.Stack.Namespace(), run.GetID(), killedAt) }()
		harness.StartWorkerAt(t, env, rec.URL())
		res.outcome = sc.check(t, env, run)
		stop()
		res.reaped = <-reaped
	} else {
		res.outcome = sc.check(t, env, run)
	}
	comps, _, err := harness.TreeCompletions(ctx, env.Client, run.GetID())
	if err != nil {
		t.Fatal(err)
	}
	res.completions = len(comps)
	res.effects = rec.Effects()
	if len(res.effects.Duplicates) > 0 {
		t.Errorf("duplicated side effects: %v", res.effects.Duplicates)
	}
	if sc.wantCompletions > 0 && res.completions != sc.wantCompletions {
		t.Errorf("%d activities completed, the clean run completed %d", res.completions, sc.wantCompletions)
	}
	if sc.wantChanges > 0 && res.effects.Changes != sc.wantChanges {
		t.Errorf("%d state changes reached the environment, want %d", res.effects.Changes, sc.wantChanges)
	}
	res.dur = time.Since(began)
	res.failed = t.Failed()
	return res
}

// crashDeploySpec is the shipped canary with short windows, so that the
// matrix fits in CI time, and with the latency bound relaxed: restarting a
// worker on a loaded 2-core machine can push p99 past 0.5s, which would roll
// back rightly but for a reason the matrix is not about.
func crashDeploySpec(t *testing.T, env *devenv.Env) deploys.Spec {
	spec := harness.DeploySpec(t, env)
	for i := range spec.Steps {
		spec.Steps[i].Pause = specfile.Duration(3 * time.Second)
	}
	spec.Bake = specfile.Duration(2 * time.Second)
	for i := range spec.Analysis.Metrics {
		if spec.Analysis.Metrics[i].Metric == "latency_p99" {
			spec.Analysis.Metrics[i].Max = harness.Ptr(5)
		}
	}
	return spec
}

var deployCrash = crashScenario{
	name: "deploy",
	begin: func(t *testing.T, env *devenv.Env) client.WorkflowRun {
		run, err := cli.StartDeploy(context.Background(), env.Client, workflows.DeployInput{Spec: crashDeploySpec(t, env), Version: "v2", RequestedBy: "crash-matrix"})
		if err != nil {
			t.Fatal(err)
		}
		return run
	},
	midPhase: "watching",
	check: func(t *testing.T, env *devenv.Env, run client.WorkflowRun) string {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		var res workflows.DeployResult
		if err := run.Get(ctx, &res); err != nil {
			t.Fatalf("deploy: %v", err)
		}
		st := harness.State(t, env)
		if res.Outcome != workflows.OutcomePromoted {
			t.Errorf("outcome %s (%s), want promoted", res.Outcome, res.Reason)
		}
		if st.VersionWeights["v2"] != 100 || st.VersionWeights["v1"] != 0 || st.Stable != "v2" || harness.Contains(st.Running, "v1") || !harness.Contains(st.Running, "v2") {
			t.Errorf("end state: weights %v stable %s running %v, want v2=100 v1=0, stable v2, only v2 running", st.VersionWeights, st.Stable, st.Running)
		}
		if len(st.Faults) != 0 {
			t.Errorf("active faults %+v", st.Faults)
		}
		// Three shifts: 10%, 50%, 100%. A SetWeights attempt killed after
		// its change reports changed=false on the retry, so fewer is fine;
		// more would be a shift made twice.
		calls, changed := harness.WeightChanges(t, env.Client, run.GetID())
		if calls != 3 || changed > 3 || changed < 2 {
			t.Errorf("SetWeights in history: %d completed, %d changed; want 3 completed, 3 changed (2 when a kill hit one after its change)", calls, changed)
		}
		return res.Outcome
	},
	// deploy v2; 10%, 50%, 100%; promote v2; stop v1.
	wantChanges: 6,
}

var drillCrash = crashScenario{
	name: "drill",
	begin: func(t *testing.T, env *devenv.Env) client.WorkflowRun {
		run, err := cli.StartDrill(context.Background(), env.Client, workflows.DrillInput{Spec: harness.DrillSpec(t, env, "region-failover"), Mode: drills.ModeAutomated, RequestedBy: "crash-matrix"})
		if err != nil {
			t.Fatal(err)
		}
		return run
	},
	midPhase: "recover",
	// load 2x; inject; evacuate east; stop the fault; fail back; load 1x.
	wantChanges: 6,
	check: func(t *testing.T, env *devenv.Env, run client.WorkflowRun) string {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		var rec ledger.Record
		if err := run.Get(ctx, &rec); err != nil {
			t.Fatalf("drill: %v", err)
		}
		if rec.Outcome != ledger.OutcomeRecovered {
			t.Errorf("outcome %s (%s), want recovered; findings %+v", rec.Outcome, rec.Reason, rec.Findings)
		}
		st := harness.State(t, env)
		if len(st.Faults) != 0 || st.RegionWeights["east"] != 50 || st.RegionWeights["west"] != 50 || !rec.Restored {
			t.Errorf("end state: faults %+v regions %v restored %v, want none, 50/50, restored", st.Faults, st.RegionWeights, rec.Restored)
		}
		if st.Load.Multiplier != 1 {
			t.Errorf("load multiplier %g after the drill, want 1", st.Load.Multiplier)
		}
		var all []localenv.FaultRecord
		harness.GetJSON(t, env.LocalURL()+"/api/faults", &all)
		if len(all) != 1 || all[0].Kind != "region_down" || all[0].Active {
			t.Errorf("faults ever injected %+v, want exactly one region_down, ended", all)
		}
		calls, changed := harness.WeightChanges(t, env.Client, run.GetID())
		if calls != 2 || changed > 2 || changed < 1 {
			t.Errorf("SetWeights in history: %d completed, %d changed; want 2 and 2 (1 when a kill hit one after its change)", calls, changed)
		}
		return rec.Outcome
	},
}

// crashMatrix runs the clean run, every boundary and the mid-activity kill.
func crashMatrix(t *testing.T, sc crashScenario) {
	var clean crashResult
	t.Run("clean", func(t *testing.T) { clean = crashRun(t, sc, 0) })
	if clean.failed || clean.completions == 0 {
		t.Fatalf("the run without a crash failed (%d activities completed); no matrix", clean.completions)
	}
	n := clean.completions
	sc.wantCompletions = n
	runs, mismatches, dups, reaped := 0, 0, 0, 0
	var longest time.Duration
	kills := make([]int, 0, n+1)
	for k := 1; k <= n; k++ {
		kills = append(kills, k)
	}
	kills = append(kills, -1)
	for _, k := range kills {
		name := fmt.Sprintf("kill-after-%d-of-%d", k, n)
		if k < 0 {
			name = "kill-during-" + sc.midPhase
		}
		t.Run(name, func(t *testing.T) {
			r := crashRun(t, sc, k)
			runs++
			if r.failed {
				mismatches++
			}
			dups += len(r.effects.Duplicates)
			reaped += r.reaped
			longest = max(longest, r.dur)
			t.Logf("%s: outcome %s, %d activities, %d state changes (clean: %d), %d duplicated, %d harmless repeats, %d orphaned attempts failed, %s",
				name, r.outcome, r.completions, r.effects.Changes, clean.effects.Changes, len(r.effects.Duplicates), r.effects.Repeats, r.reaped, r.dur.Round(100*time.Millisecond))
		})
	}
	t.Logf("CRASH MATRIX %s: %d activities per clean run (%d state changes), %d kill points (%d boundaries + 1 mid-%s), %d runs, %d mismatches, %d duplicated side effects, %d orphaned attempts failed early, longest run %s",
		sc.name, n, clean.effects.Changes, len(kills), n, sc.midPhase, runs, mismatches, dups, reaped, longest.Round(100*time.Millisecond))
}

func TestCrashMatrixDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("crash matrix: minutes of real runs")
	}
	t.Parallel()
	crashMatrix(t, deployCrash)
}

func TestCrashMatrixDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("crash matrix: minutes of real runs")
	}
	t.Parallel()
	crashMatrix(t, drillCrash)
}
