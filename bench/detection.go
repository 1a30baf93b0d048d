package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/specfile"
	"github.com/drillship/drillship/workflows"
)

// detection runs region-failover drills in automated mode and compares the
// detected mark with the local environment's record of when the fault began.
func (r *runner) detection(ctx context.Context, s *Section) *drillHistory {
	n := r.p.drills
	s.Method = fmt.Sprintf("Embedded stack with the local environment (load %d requests/s) and the in-process worker "+
		"with the shipped providers. The shipped region-failover drill (east blackholed, probe interval 250ms) in "+
		"automated mode, with recovery.holdFor 500ms and detection, mitigation and recovery timeouts of 30s; %d drills "+
		"one after another, each must end recovered and restored. Detection error = |detected mark - startedAt of "+
		"the region_down fault the drill injected|, the ground truth from GET /api/faults. Mitigation latency is the "+
		"record's MitigationLatencyMs (signal observed -> mitigation action started). Targets: detection error <= one "+
		"probe interval; mitigation latency median < 200ms.", localRPS, n)
	env, err := devenv.Start(ctx, devenv.Options{Local: localenv.Options{RPS: localRPS}})
	if err != nil {
		s.fail(err)
		return nil
	}
	defer env.Close()
	spec, err := drills.Load("region-failover", env.Registry)
	if err != nil {
		s.fail(err)
		return nil
	}
	spec.Recovery.HoldFor = specfile.Duration(500 * time.Millisecond)
	spec.Recovery.Timeout = specfile.Duration(30 * time.Second)
	spec.Detection.Timeout = specfile.Duration(30 * time.Second)
	spec.Mitigation.Timeout = specfile.Duration(30 * time.Second)
	interval := spec.Detection.Interval.D()

	var errs, signed, mitig, wall []float64
	var hist *drillHistory
	for i := 0; i < n; i++ {
		t0 := time.Now()
		id := fmt.Sprintf("drill/%s/bench-%d-%d", spec.Name, i+1, t0.UnixMilli())
		run, err := startDrill(ctx, env.Client, id, workflows.DrillInput{Spec: *spec, Mode: drills.ModeAutomated, RequestedBy: "bench"})
		if err != nil {
			s.fail(fmt.Errorf("drill %d: start: %w", i+1, err))
			return hist
		}
		var rec ledger.Record
		if err := run.Get(ctx, &rec); err != nil {
			s.fail(fmt.Errorf("drill %d: %w", i+1, err))
			return hist
		}
		if rec.Outcome != ledger.OutcomeRecovered || !rec.Restored {
			s.fail(fmt.Errorf("drill %d: outcome %s restored %v: %s", i+1, rec.Outcome, rec.Restored, rec.Reason))
			return hist
		}
		detected, ok := rec.MarkAt(ledger.Detected)
		if !ok {
			s.fail(fmt.Errorf("drill %d: no detected mark: %+v", i+1, rec.Marks))
			return hist
		}
		var faults []localenv.FaultRecord
		if err := localGet(ctx, env.LocalURL()+"/api/faults", &faults); err != nil {
			s.fail(err)
			return hist
		}
		var truth *localenv.FaultRecord
		for j := range faults {
			if f := &faults[j]; f.Kind == "region_down" && f.StartedAt >= t0.UnixMilli() {
				if truth != nil {
					s.fail(fmt.Errorf("drill %d: two region_down faults since it started: %+v", i+1, faults))
					return hist
				}
				truth = f
			}
		}
		if truth == nil {
			s.fail(fmt.Errorf("drill %d: the local environment recorded no region_down fault since it started", i+1))
			return hist
		}
		if rec.MitigationLatencyMs == nil {
			s.fail(fmt.Errorf("drill %d: the record has no mitigation latency (automated mode)", i+1))
			return hist
		}
		e := float64(detected - truth.StartedAt)
		signed = append(signed, e)
		errs = append(errs, max(e, -e))
		mitig = append(mitig, float64(*rec.MitigationLatencyMs))
		wall = append(wall, ms(time.Since(t0)))
		if hist == nil {
			parent, total, err := countWithChildren(ctx, env.Client, run.GetID(), run.GetRunID())
			if err != nil {
				s.fail(err)
				return nil
			}
			hist = &drillHistory{Parent: parent.Events, Total: total, Children: len(parent.Children)}
		}
		r.logf("detection: drill %d/%d: detection error %.0fms, mitigation latency %dms", i+1, n, e, *rec.MitigationLatencyMs)
	}
	iv := float64(interval.Milliseconds())
	s.add("drills", float64(n), "drills")
	s.target("detection error median", Median(errs), "ms", "<=", iv)
	s.target("detection error p95", P95(errs), "ms", "<=", iv)
	s.add("detection error max", Percentile(errs, 100), "ms")
	s.target("mitigation latency median", Median(mitig), "ms", "<", 200)
	s.add("mitigation latency p95", P95(mitig), "ms")
	s.add("drill wall time median", Median(wall), "ms")
	s.Data = map[string]any{"detectionErrorMs": errs, "detectionSignedMs": signed, "mitigationLatencyMs": mitig, "drillWallMs": wall}
	return hist
}
