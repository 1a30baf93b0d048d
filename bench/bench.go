// Package bench measures drillship on the embedded stack and writes the
// figures with the method behind each (`drillship bench`): orchestration
// overhead against a floor workflow, time to roll back a bad canary,
// detection accuracy of region-failover drills against the local
// environment's ground truth, a fleet of concurrent deploys on one worker
// process, history size, start-up time and binary size.
package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"
)

// Options configure Run.
type Options struct {
	Quick bool
	// Exe is the drillship binary; the fleet runs `Exe bench serve` and
	// `Exe bench worker` as processes of their own.
	Exe string
	// SourceDir is the module root that `go build` builds for the binary
	// size; "" uses the working directory.
	SourceDir string
	// Only runs these sections; the rest are reported as skipped. Nil runs
	// every section.
	Only []string
	// OverheadRuns overrides the number of measured deploy/floor pairs.
	OverheadRuns int
	// Kills overrides the number of worker kills in the kill section.
	Kills int
	// Kubernetes adds the kubernetes section (drillship and Argo Rollouts
	// on the lab's cluster); `--only kubernetes` runs it alone.
	Kubernetes bool
	// Progress gets one line per step; nil discards.
	Progress io.Writer
}

// plan is how much each section does.
type plan struct {
	startups        int
	overheadRuns    int
	rollbackRuns    int
	drills          int
	fleet           []int
	historyWindows  [2]time.Duration
	historyInterval time.Duration
	build           bool
	kills           int
}

func planFor(o Options) plan {
	p := plan{
		startups: 3, overheadRuns: 20, rollbackRuns: 20, drills: 20, fleet: []int{1000, 10000},
		historyWindows: [2]time.Duration{time.Second, 10 * time.Second}, historyInterval: 250 * time.Millisecond,
		build: true, kills: 10,
	}
	if o.Quick {
		p.overheadRuns, p.rollbackRuns, p.drills, p.fleet = 5, 5, 3, []int{100}
		p.historyWindows = [2]time.Duration{500 * time.Millisecond, 2 * time.Second}
		p.kills = 1 // about 20 s: a smoke of the section, not the figure
	}
	if o.Kills > 0 {
		p.kills = o.Kills
	}
	if o.OverheadRuns > 0 {
		p.overheadRuns = o.OverheadRuns
	}
	return p
}

type runner struct {
	o    Options
	p    plan
	out  io.Writer
	rep  *Report
	mach Machine
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.out, "bench: "+format+"\n", args...)
}

func (r *runner) wanted(name string) bool {
	return r.o.Only == nil || slices.Contains(r.o.Only, name)
}

// Run measures every section asked for and returns the report. A section
// that fails is recorded as an error in the report; Run itself fails only
// when ctx ends.
func Run(ctx context.Context, o Options) (*Report, error) {
	for _, name := range o.Only {
		if name == SecKubernetes {
			o.Kubernetes = true
			continue
		}
		if !slices.Contains(Sections, name) {
			return nil, fmt.Errorf("bench: section %q: allowed %v", name, append(slices.Clone(Sections), SecKubernetes))
		}
	}
	start := time.Now()
	r := &runner{o: o, p: planFor(o), out: o.Progress}
	if r.out == nil {
		r.out = io.Discard
	}
	r.rep = &Report{Schema: Schema, Quick: o.Quick, StartedAt: start.UTC().Format(time.RFC3339)}
	r.rep.Machine = ReadMachine(ctx)

	titles := map[string]string{
		SecStartup:   "Startup and size",
		SecOverhead:  "Orchestration overhead (deploy vs floor)",
		SecHistory:   "History size",
		SecRollback:  "Rollback latency",
		SecDetection: "Detection accuracy (region-failover drills)",
		SecFleet:     "Fleet (concurrent deploys on one worker process)",
		SecKill:      "Worker SIGKILL during a watch (unobserved canary time)",
	}
	var drillEvents *drillHistory
	for _, name := range Sections {
		s := Section{Name: name, Title: titles[name], Status: StatusOK, Figures: []Figure{}}
		if !r.wanted(name) {
			s.Status, s.Method = StatusSkipped, "not run: this run asked only for "+fmt.Sprint(o.Only)
			r.rep.Sections = append(r.rep.Sections, s)
			continue
		}
		t0 := time.Now()
		r.logf("%s: start", name)
		switch name {
		case SecStartup:
			r.startup(ctx, &s)
		case SecOverhead:
			r.overhead(ctx, &s)
		case SecHistory:
			r.history(ctx, &s)
		case SecRollback:
			r.rollback(ctx, &s)
		case SecDetection:
			drillEvents = r.detection(ctx, &s)
		case SecFleet:
			r.fleet(ctx, &s)
		case SecKill:
			r.kill(ctx, &s)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench interrupted in section %s: %w", name, err)
		}
		r.logf("%s: %s in %s", name, s.Status, time.Since(t0).Round(100*time.Millisecond))
		if s.Error != "" {
			r.logf("%s: error: %s", name, s.Error)
		}
		r.rep.Sections = append(r.rep.Sections, s)
	}
	if o.Kubernetes {
		s := Section{Name: SecKubernetes, Title: "Kubernetes: drillship and Argo Rollouts, same canary", Status: StatusOK, Figures: []Figure{}}
		t0 := time.Now()
		r.logf("%s: start", SecKubernetes)
		r.kubernetes(ctx, &s)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench interrupted in section %s: %w", SecKubernetes, err)
		}
		r.logf("%s: %s in %s", SecKubernetes, s.Status, time.Since(t0).Round(100*time.Millisecond))
		if s.Status == StatusSkipped {
			r.logf("%s: %s", SecKubernetes, s.Method)
		}
		if s.Error != "" {
			r.logf("%s: error: %s", SecKubernetes, s.Error)
		}
		r.rep.Sections = append(r.rep.Sections, s)
	}
	if h := r.rep.Section(SecHistory); h != nil && h.Status == StatusOK {
		addDrillHistory(h, drillEvents)
	}
	r.rep.DurationMs = max(time.Since(start).Milliseconds(), 1)
	return r.rep, nil
}
