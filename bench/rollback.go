package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/specfile"
	"github.com/drillship/drillship/workflows"
)

const (
	rollbackInterval = 250 * time.Millisecond
	localRPS         = 100
)

// rollback runs bad canaries on the local environment and reads the time
// to roll back from each DeployResult.
func (r *runner) rollback(ctx context.Context, s *Section) {
	n := r.p.rollbackRuns
	s.Method = fmt.Sprintf("Embedded stack with the local environment (real HTTP servers on loopback, load generator at "+
		"%d requests/s) and the in-process worker with the shipped providers. A bad_version fault makes v2 answer 500 "+
		"at rate 0.5. The shipped web-canary spec with analysis interval %s, metric windows 1s, steps 10%%/4s and "+
		"50%%/4s, bake 1s; %d deploys of v2 one after another, each must end rolled_back. Time to rollback is the "+
		"DeployResult's TimeToRollbackMs: the time the weights were read back with all traffic on stable, minus the "+
		"time of the failing sample (the SLI observation that exceeded the failure limit). Target: < 500ms + one "+
		"analysis interval.", localRPS, rollbackInterval, n)
	env, err := devenv.Start(ctx, devenv.Options{Local: localenv.Options{RPS: localRPS}})
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
	spec.Analysis.Interval = specfile.Duration(rollbackInterval)
	for i := range spec.Analysis.Metrics {
		spec.Analysis.Metrics[i].Window = specfile.Duration(time.Second)
	}
	spec.Steps = []deploys.Step{{Weight: 10, Pause: specfile.Duration(4 * time.Second)}, {Weight: 50, Pause: specfile.Duration(4 * time.Second)}}
	spec.Bake = specfile.Duration(time.Second)
	if err := spec.Validate(env.Registry); err != nil {
		s.fail(err)
		return
	}
	fault := map[string]any{"kind": "bad_version", "params": map[string]string{"version": "v2", "rate": "0.5"}}
	if err := localPost(ctx, env.LocalURL()+"/api/faults", fault, nil); err != nil {
		s.fail(err)
		return
	}
	var ttr, wall []float64
	for i := 0; i < n; i++ {
		t0 := time.Now()
		run, err := startDeploy(ctx, env.Client, workflows.DeployInput{Spec: *spec, Version: "v2", RequestedBy: "bench"})
		if err != nil {
			s.fail(fmt.Errorf("run %d: start deploy: %w", i+1, err))
			return
		}
		var res workflows.DeployResult
		if err := run.Get(ctx, &res); err != nil && !workflows.RecordOf(err, &res) { // a rollback ends failed, its record in the error
			s.fail(fmt.Errorf("run %d: %w", i+1, err))
			return
		}
		if res.Outcome != workflows.OutcomeRolledBack || res.TimeToRollbackMs == nil {
			s.fail(fmt.Errorf("run %d: outcome %s (%s), time to rollback %v; want rolled_back after a failed sample",
				i+1, res.Outcome, res.Reason, res.TimeToRollbackMs))
			return
		}
		var st localenv.State
		if err := localGet(ctx, env.LocalURL()+"/api/state", &st); err != nil {
			s.fail(err)
			return
		}
		if st.VersionWeights["v2"] != 0 || st.Stable != "v1" {
			s.fail(fmt.Errorf("run %d: after rollback weights %v stable %s, want v2=0 stable v1", i+1, st.VersionWeights, st.Stable))
			return
		}
		ttr = append(ttr, float64(*res.TimeToRollbackMs))
		wall = append(wall, ms(time.Since(t0)))
		r.logf("rollback: run %d/%d: time to rollback %dms", i+1, n, *res.TimeToRollbackMs)
	}
	bound := float64(500 + rollbackInterval.Milliseconds())
	s.add("runs", float64(n), "runs")
	s.target("time to rollback median", Median(ttr), "ms", "<", bound)
	s.target("time to rollback p95", P95(ttr), "ms", "<", bound)
	s.add("time to rollback max", Percentile(ttr, 100), "ms")
	s.add("deploy start to rolled back, median", Median(wall), "ms")
	s.Data = map[string]any{"timeToRollbackMs": ttr, "deployWallMs": wall}
}
