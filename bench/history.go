package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/drillship/drillship/workflows"
)

// historyWeights are the five steps of the history deploys.
var historyWeights = []int{10, 25, 50, 75, 100}

// drillHistory is what the detection section learnt about drill histories.
type drillHistory struct {
	Parent, Total, Children int
}

// history counts the events of five-step deploys whose windows differ, to
// show that watching longer does not grow the history.
func (r *runner) history(ctx context.Context, s *Section) {
	short, long := r.p.historyWindows[0], r.p.historyWindows[1]
	iv := r.p.historyInterval
	s.Method = fmt.Sprintf("Same stack as the overhead section (bench no-op provider, in-process worker). Three deploys of "+
		"%d steps (weights %v), bake equal to the window: windows 0 (nothing watched), %s and %s, sampled every %s; the "+
		"two watched ones run at the same time. Events counted with GetWorkflowHistory after each closed. Watching a "+
		"window is one activity that heartbeats (heartbeats are not history events), so the count does not depend on "+
		"the window's length or the number of samples; the samples taken are read from the DeployResult to show the "+
		"longer window did sample more. Drill events are counted on the detection section's first drill (parent and "+
		"its Failover children).", len(historyWeights), historyWeights, short, long, iv)
	st, err := startNoopStack(ctx)
	if err != nil {
		s.fail(err)
		return
	}
	defer st.Close()
	c := st.env.Client

	type result struct {
		events, activities, samples int
		err                         error
	}
	run := func(scope string, window time.Duration) result {
		spec, err := noopDeploySpec(scope, historyWeights, window, iv)
		if err != nil {
			return result{err: err}
		}
		// Each its own service, so that the three deploy ids differ.
		spec.Service = scope
		wr, err := startDeploy(ctx, c, workflows.DeployInput{Spec: spec, Version: "v2", RequestedBy: "bench"})
		if err != nil {
			return result{err: err}
		}
		var res workflows.DeployResult
		if err := wr.Get(ctx, &res); err != nil {
			return result{err: fmt.Errorf("deploy window %s: %w", window, err)}
		}
		if res.Outcome != workflows.OutcomePromoted {
			return result{err: fmt.Errorf("deploy window %s: outcome %s (%s)", window, res.Outcome, res.Reason)}
		}
		h, err := countHistory(ctx, c, wr.GetID(), wr.GetRunID())
		if err != nil {
			return result{err: err}
		}
		n := 0
		for _, st := range res.Steps {
			n += st.Samples
		}
		return result{events: h.Events, activities: len(h.Activities), samples: n}
	}
	zero := run("history-0", 0)
	var a, b result
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = run("history-short", short) }()
	go func() { defer wg.Done(); b = run("history-long", long) }()
	wg.Wait()
	for _, x := range []result{zero, a, b} {
		if x.err != nil {
			s.fail(x.err)
			return
		}
	}
	s.add("deploy events, windows 0", float64(zero.events), "events")
	s.add(fmt.Sprintf("deploy events, windows %s", short), float64(a.events), "events")
	s.add(fmt.Sprintf("deploy events, windows %s", long), float64(b.events), "events")
	s.target(fmt.Sprintf("event difference %s vs %s", long, short), float64(b.events-a.events), "events", "<=", 0)
	s.add(fmt.Sprintf("samples taken, windows %s", short), float64(a.samples), "samples")
	s.add(fmt.Sprintf("samples taken, windows %s", long), float64(b.samples), "samples")
	s.add("activities per watched deploy", float64(a.activities), "activities")
	s.Notes = append(s.Notes, fmt.Sprintf("a %s window scheduled %d samples and the same %d events as a %s window: "+
		"a 1-hour canary at a 10s interval has the same count as a short one with the same steps.",
		long, b.samples, b.events, short))
	s.Data = map[string]any{"windowsMs": []int64{0, short.Milliseconds(), long.Milliseconds()},
		"events": []int{zero.events, a.events, b.events}, "samples": []int{zero.samples, a.samples, b.samples}}
}

func addDrillHistory(s *Section, d *drillHistory) {
	if d == nil {
		s.Notes = append(s.Notes, "drill events: not counted (the detection section did not run or failed)")
		return
	}
	s.add("drill events (Drill workflow)", float64(d.Parent), "events")
	s.add("drill events incl. Failover children", float64(d.Total), "events")
	s.add("Failover children per drill", float64(d.Children), "workflows")
}
