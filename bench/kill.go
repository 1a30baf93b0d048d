package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/specfile"
	"github.com/drillship/drillship/workflows"
)

const (
	killWindow   = 8 * time.Second // the watched step's window
	killInterval = time.Second     // the shipped web-canary's analysis interval
	killAfter    = 2500 * time.Millisecond
)

// kill SIGKILLs the worker process that holds a canary's watch and starts a
// new one at once, then reads from the deploy's step record how long nobody
// watched the canary and whether any of that time was counted as evidence.
func (r *runner) kill(ctx context.Context, s *Section) {
	n := r.p.kills
	hb := activities.WatchHeartbeatTimeout(killInterval, 0)
	bound := float64((hb + killInterval).Milliseconds())
	s.Method = fmt.Sprintf("Embedded Temporal server and local environment (load at %d requests/s); the worker is a separate "+
		"`drillship worker` process. %d deploys one after another of a good version (v2, v3, ...) with the shipped web-canary "+
		"analysis (interval %s), one step of 10%% watched for %s, bake 1s. %s into each watch the worker holding it is "+
		"SIGKILLed and a new worker process is started at once (a supervisor restarting it). From each deploy's step record: "+
		"unobserved time is the step's UnobservedMs (the gaps from the next sample due after the last heartbeat that reached "+
		"the server to the retried watch's start); kill to sampling again is the retry's first sample (the gap's end plus one "+
		"interval) minus the kill; counted as evidence is how much of the window the step passed without watching "+
		"(window - (span - unobserved), at least 0). Target: unobserved at most the watch heartbeat timeout (%s) plus one "+
		"interval; nothing counted as evidence.", localRPS, n, killInterval, killWindow, killAfter, hb)
	if r.o.Exe == "" {
		s.fail(errors.New("no drillship binary to run workers from (Options.Exe)"))
		return
	}
	env, err := devenv.Start(ctx, devenv.Options{NoWorker: true, Local: localenv.Options{RPS: localRPS}})
	if err != nil {
		s.fail(err)
		return
	}
	defer env.Close()
	spec, err := deploys.Load("web-canary", env.Registry)
	if err != nil {
		s.fail(err)
		return
	}
	spec.Steps = []deploys.Step{{Weight: 10, Pause: specfile.Duration(killWindow)}}
	spec.Bake = specfile.Duration(time.Second)
	for i := range spec.Analysis.Metrics {
		if spec.Analysis.Metrics[i].Metric == "latency_p99" {
			// A worker restarting on a loaded machine can push p99 past
			// the shipped bound; the figure is about the watch, not latency.
			v := 5.0
			spec.Analysis.Metrics[i].Max = &v
		}
	}
	if err := spec.Validate(env.Registry); err != nil {
		s.fail(err)
		return
	}
	w, err := startWorkerProc(r.o.Exe, env)
	if err != nil {
		s.fail(err)
		return
	}
	defer func() { w.kill() }()
	var unobserved, resumed, counted []float64
	for i := 0; i < n; i++ {
		version := fmt.Sprintf("v%d", i+2)
		run, err := startDeploy(ctx, env.Client, workflows.DeployInput{Spec: *spec, Version: version, RequestedBy: "bench"})
		if err != nil {
			s.fail(fmt.Errorf("kill %d: start deploy: %w", i+1, err))
			return
		}
		if err := waitWatching(ctx, env, run.GetID()); err != nil {
			s.fail(fmt.Errorf("kill %d: %w", i+1, err))
			return
		}
		time.Sleep(killAfter)
		w.kill()
		killedAt := time.Now().UnixMilli()
		if w, err = startWorkerProc(r.o.Exe, env); err != nil {
			s.fail(err)
			return
		}
		var res workflows.DeployResult
		if err := run.Get(ctx, &res); err != nil && !workflows.RecordOf(err, &res) {
			s.fail(fmt.Errorf("kill %d: %w", i+1, err))
			return
		}
		var step *workflows.StepRecord
		for j := range res.Steps {
			if res.Steps[j].Weight == 10 && res.Steps[j].Kind == workflows.WatchWindow {
				step = &res.Steps[j]
			}
		}
		if res.Outcome != workflows.OutcomePromoted || step == nil || len(step.Gaps) == 0 {
			s.fail(fmt.Errorf("kill %d: outcome %s (%s), 10%% step %+v: want promoted with the kill's gap recorded", i+1, res.Outcome, res.Reason, step))
			return
		}
		last := step.Gaps[len(step.Gaps)-1]
		watched := step.EndedAt - step.StartedAt - step.UnobservedMs
		unobserved = append(unobserved, float64(step.UnobservedMs))
		resumed = append(resumed, float64(last.To+killInterval.Milliseconds()-killedAt))
		counted = append(counted, float64(max(0, killWindow.Milliseconds()-watched)))
		r.logf("kill: %d/%d: unobserved %dms, sampling again %dms after the kill, window watched %dms of %dms",
			i+1, n, step.UnobservedMs, last.To+killInterval.Milliseconds()-killedAt, watched, killWindow.Milliseconds())
	}
	s.add("kills", float64(n), "kills")
	s.target("unobserved canary time median", Median(unobserved), "ms", "<=", bound)
	s.target("unobserved canary time max", Percentile(unobserved, 100), "ms", "<=", bound)
	s.add("kill to sampling again, median", Median(resumed), "ms")
	s.add("kill to sampling again, max", Percentile(resumed, 100), "ms")
	total := 0.0
	for _, c := range counted {
		total += c
	}
	s.target("unobserved time counted as evidence", total, "ms", "<=", 0)
	s.Data = map[string]any{"unobservedMs": unobserved, "killToSamplingMs": resumed, "countedAsEvidenceMs": counted}
}

// workerProc is a `drillship worker` process against env.
type workerProc struct{ cmd *exec.Cmd }

func startWorkerProc(exe string, env *devenv.Env) (*workerProc, error) {
	cmd := exec.Command(exe, "worker", "--address", env.Stack.Address(), "--local-env", env.LocalURL())
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker process: %w", err)
	}
	return &workerProc{cmd}, nil
}

// kill sends SIGKILL (no chance to finish anything) and reaps the process.
func (w *workerProc) kill() {
	if w != nil && w.cmd.ProcessState == nil {
		_ = w.cmd.Process.Signal(syscall.SIGKILL)
		_ = w.cmd.Wait()
	}
}

// waitWatching polls the deploy's state query until its step's watch runs.
func waitWatching(ctx context.Context, env *devenv.Env, id string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if v, err := env.Client.QueryWorkflow(ctx, id, "", workflows.QueryState); err == nil {
			var st workflows.DeployState
			if v.Get(&st) == nil && st.Phase == "watching" {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s never started watching", id)
}
