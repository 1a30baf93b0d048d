package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/workflows"
)

// overheadWeights are the five steps of the overhead deploy.
var overheadWeights = []int{20, 40, 60, 80, 100}

// overhead times a five-step deploy with zero-length windows against the
// floor, interleaved on the same server and worker.
func (r *runner) overhead(ctx context.Context, s *Section) {
	n := r.p.overheadRuns
	s.Method = fmt.Sprintf("Embedded Temporal server (SQLite in memory) and one in-process worker registering the real Deploy "+
		"workflow and activities over a registry holding only the bench no-op provider (traffic, release and signals in "+
		"memory), plus the floor workflow %s. Deploy: %d steps (weights %v), pause 0, bake 0. The activities the deploy "+
		"ran were read from its history (ActivityTaskScheduled events) and the floor runs exactly that many, in the same "+
		"order and with the same activity options, each a no-op activity. One unmeasured warm-up pair, then %d measured "+
		"pairs run one at a time and interleaved (deploy, floor, deploy, floor, ...), each started after %s idle: a "+
		"workflow started right after another closed runs several times slower on the embedded server (the warm-up "+
		"floor, started back to back, shows how much). A run's duration is client wall time from ExecuteWorkflow to "+
		"the result. Ratio = median deploy / median floor.",
		FloorWorkflow, len(overheadWeights), overheadWeights, n, overheadGap)
	st, err := startNoopStack(ctx)
	if err != nil {
		s.fail(err)
		return
	}
	defer st.Close()
	c := st.env.Client

	runDeploy := func(i int) (time.Duration, client.WorkflowRun, error) {
		spec, err := noopDeploySpec(fmt.Sprintf("overhead-%d", i), overheadWeights, 0, time.Second)
		if err != nil {
			return 0, nil, err
		}
		t0 := time.Now()
		run, err := startDeploy(ctx, c, workflows.DeployInput{Spec: spec, Version: "v2", RequestedBy: "bench"})
		if err != nil {
			return 0, nil, fmt.Errorf("start deploy: %w", err)
		}
		var res workflows.DeployResult
		if err := run.Get(ctx, &res); err != nil {
			return 0, nil, fmt.Errorf("deploy %d: %w", i, err)
		}
		d := time.Since(t0)
		if res.Outcome != workflows.OutcomePromoted {
			return 0, nil, fmt.Errorf("deploy %d: outcome %s (%s), want promoted", i, res.Outcome, res.Reason)
		}
		return d, run, nil
	}
	runFloor := func(i int, kinds []string) (time.Duration, client.WorkflowRun, error) {
		t0 := time.Now()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: fmt.Sprintf("bench/floor/%d", i), TaskQueue: workflows.TaskQueue,
		}, FloorWorkflow, FloorInput{Kinds: kinds})
		if err != nil {
			return 0, nil, fmt.Errorf("start floor: %w", err)
		}
		var got int
		if err := run.Get(ctx, &got); err != nil {
			return 0, nil, fmt.Errorf("floor %d: %w", i, err)
		}
		if got != len(kinds) {
			return 0, nil, fmt.Errorf("floor %d ran %d activities, want %d", i, got, len(kinds))
		}
		return time.Since(t0), run, nil
	}

	// Warm-up pair: it also tells which activities a deploy runs.
	_, drun, err := runDeploy(0)
	if err != nil {
		s.fail(err)
		return
	}
	dh, err := countHistory(ctx, c, drun.GetID(), drun.GetRunID())
	if err != nil {
		s.fail(err)
		return
	}
	backToBack, frun, err := runFloor(0, dh.Activities)
	if err != nil {
		s.fail(err)
		return
	}
	fh, err := countHistory(ctx, c, frun.GetID(), frun.GetRunID())
	if err != nil {
		s.fail(err)
		return
	}
	if len(fh.Activities) != len(dh.Activities) {
		s.fail(fmt.Errorf("floor scheduled %d activities, the deploy %d", len(fh.Activities), len(dh.Activities)))
		return
	}

	var dep, flo []float64
	for i := 1; i <= n; i++ {
		if err := idle(ctx); err != nil {
			s.fail(err)
			return
		}
		d, _, err := runDeploy(i)
		if err != nil {
			s.fail(err)
			return
		}
		if err := idle(ctx); err != nil {
			s.fail(err)
			return
		}
		f, _, err := runFloor(i, dh.Activities)
		if err != nil {
			s.fail(err)
			return
		}
		dep, flo = append(dep, ms(d)), append(flo, ms(f))
	}
	r.logf("overhead: %d pairs, deploy median %.1fms, floor median %.1fms", n, Median(dep), Median(flo))
	s.add("activities per deploy (= per floor)", float64(len(dh.Activities)), "activities")
	s.add("runs (pairs)", float64(n), "runs")
	s.add("deploy median", Median(dep), "ms")
	s.add("deploy p95", P95(dep), "ms")
	s.add("floor median", Median(flo), "ms")
	s.add("floor p95", P95(flo), "ms")
	if Median(flo) > 0 {
		s.target("ratio of medians (deploy / floor)", Median(dep)/Median(flo), "x", "<=", 1.3)
	}
	s.add("floor started back to back (warm-up, not in the ratio)", ms(backToBack), "ms")
	s.add("deploy history events", float64(dh.Events), "events")
	s.add("floor history events", float64(fh.Events), "events")
	s.Notes = append(s.Notes, "deploy activities, in order: "+compact(dh.Activities))
	s.Data = map[string]any{"deployMs": dep, "floorMs": flo, "deployActivities": dh.Activities}
}

// overheadGap is the idle time before each measured run.
const overheadGap = 2 * time.Second

func idle(ctx context.Context) error {
	t := time.NewTimer(overheadGap)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// compact writes ["A","B","B","C"] as "A, B x2, C".
func compact(xs []string) string {
	var parts []string
	for i := 0; i < len(xs); {
		j := i
		for j < len(xs) && xs[j] == xs[i] {
			j++
		}
		if j-i > 1 {
			parts = append(parts, fmt.Sprintf("%s x%d", xs[i], j-i))
		} else {
			parts = append(parts, xs[i])
		}
		i = j
	}
	return strings.Join(parts, ", ")
}
