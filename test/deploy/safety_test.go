package deploy

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/specfile"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

// Issue 10: the promises a deploy makes, tried from outside as an operator
// would break them: a worker process SIGKILLed while it watches a canary
// that has just gone bad, and several people deploying at once.

// killSpec is the shipped canary with windows long enough for a kill, its
// heartbeat timeout and a retry to fall inside them.
func killSpec(t *testing.T, env *devenv.Env) deploys.Spec {
	spec := harness.DeploySpec(t, env)
	spec.Steps[0].Pause = specfile.Duration(6 * time.Second)
	spec.Bake = specfile.Duration(5 * time.Second)
	harness.RelaxLatency(&spec)
	return spec
}

// TestWorkerKillDuringWatchDoesNotPromote: the canary starts failing 30% of
// its requests while a worker watches it, and that worker is SIGKILLed. A
// new worker takes over. Whatever the phase, the deploy must not promote,
// traffic must end on the stable version, and no window may pass on time
// during which nobody watched (fails on 716d774: the bake case promotes, a
// retried watch passes its window with 0 samples).
func TestWorkerKillDuringWatchDoesNotPromote(t *testing.T) {
	for _, tc := range []struct {
		name, phase string
		weight      int
	}{
		{"step-window", "watching", 10},
		{"bake", "baking", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := harness.Start(t, true)
			inv := harness.WatchInvariants(t, env)
			w := harness.StartWorker(t, env)
			spec := killSpec(t, env)
			run := harness.StartDeploy(t, env, spec, "v2", "kill-test")
			harness.WaitPhase(t, env.Client, run.GetID(), tc.phase)
			time.Sleep(time.Second) // inside the window, with a sample or so taken
			if st := harness.State(t, env); st.VersionWeights["v2"] != tc.weight {
				t.Fatalf("the canary has %d%% in phase %s, want %d", st.VersionWeights["v2"], tc.phase, tc.weight)
			}
			harness.BadVersion(t, env, "v2", "0.3")
			time.Sleep(300 * time.Millisecond) // the dying worker may take a bad sample or not
			w.Kill()
			harness.StartWorker(t, env)
			res, runErr := harness.DeployResultOf(t, run, 4*time.Minute)
			st := harness.State(t, env)
			steps := harness.Steps(t, res.Steps)
			t.Logf("outcome %s (%s), err %v; steps %+v; weights %v stable %s running %v",
				res.Outcome, res.Reason, runErr, steps, st.VersionWeights, st.Stable, st.Running)
			if res.Outcome == workflows.OutcomePromoted || res.Outcome != workflows.OutcomeRolledBack {
				t.Errorf("outcome %s (%s): a canary failing 30%% of its requests must be rolled back", res.Outcome, res.Reason)
			}
			if st.VersionWeights["v1"] != 100 || st.VersionWeights["v2"] != 0 || st.Stable != "v1" || harness.Contains(st.Running, "v2") {
				t.Errorf("end state: weights %v stable %s running %v, want v1=100, stable v1, v2 stopped", st.VersionWeights, st.Stable, st.Running)
			}
			for _, b := range harness.BlindPasses(spec, steps) {
				t.Errorf("blind pass: %s", b)
			}
			if harness.Unobserved(steps) <= 0 {
				t.Errorf("no step records unobserved time, yet a worker died holding the watch: %+v", steps)
			}
			if runErr == nil || workflows.EndingOf(runErr) != workflows.ErrRolledBack {
				t.Errorf("the rolled-back deploy ended with error %v in Temporal, want a %s failure", runErr, workflows.ErrRolledBack)
			}
			inv.Assert(t)
		})
	}
}

// TestConcurrentDeploysOfOneService: five people start a deploy of web at
// the same moment. Exactly one runs; the others are refused with exit 2
// naming the running deploy; version weights always sum to 100 and end
// with one version at 100 (fails on 716d774: all five start).
func TestConcurrentDeploysOfOneService(t *testing.T) {
	env := harness.Start(t, false)
	inv := harness.WatchInvariants(t, env)
	const n = 5
	type answer struct {
		version        string
		code           int
		stdout, stderr string
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := fmt.Sprintf("v%d", i+2)
			<-gate
			code, out, errOut := harness.RunCLI("deploy", "start", "web-canary", "--version", v,
				"--address", env.Stack.Address(), "--local-env", env.LocalURL())
			answers[i] = answer{v, code, out, errOut}
		}()
	}
	close(gate)
	wg.Wait()
	var started []string
	for _, a := range answers {
		switch a.code {
		case 0:
			started = append(started, a.version)
		case cli.ExitUsage:
		default:
			t.Errorf("deploy start %s: exit %d (want 0 or %d)\n%s\n%s", a.version, a.code, cli.ExitUsage, a.stdout, a.stderr)
		}
	}
	if len(started) != 1 {
		t.Fatalf("%d deploys of web started at once (%v), want exactly 1", len(started), started)
	}
	winner := workflows.DeployID("web", started[0])
	for _, a := range answers {
		if a.code == cli.ExitUsage && !strings.Contains(a.stderr, winner) {
			t.Errorf("deploy start %s refused without naming the running deploy %s: %s", a.version, winner, a.stderr)
		}
	}
	res, _ := harness.DeployResultOf(t, env.Client.GetWorkflow(t.Context(), winner, ""), 3*time.Minute)
	st := harness.State(t, env)
	at100 := 0
	for _, w := range st.VersionWeights {
		if w == 100 {
			at100++
		}
	}
	if at100 != 1 || len(st.Running) != 1 {
		t.Errorf("after the deploy (%s): weights %v running %v, want one version at 100 and running alone", res.Outcome, st.VersionWeights, st.Running)
	}
	inv.Assert(t)
	// A second deploy of the version that now runs is refused too.
	code, _, stderr := harness.RunCLI("deploy", "start", "web-canary", "--version", st.Stable,
		"--address", env.Stack.Address(), "--local-env", env.LocalURL())
	if code != cli.ExitUsage || !strings.Contains(stderr, st.Stable) {
		t.Errorf("deploy start of the running version %s: exit %d %s, want %d saying it already runs", st.Stable, code, stderr, cli.ExitUsage)
	}
}
