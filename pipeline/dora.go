package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drillship/drillship/dora"
	"github.com/drillship/drillship/workflows"
)

// doraGauges are the DORA figures per service and environment, as
// dora.Compute defines them; each HELP says how the figure is computed.
type doraGauges struct {
	perDay, changeFail, restore, lead, span, production, failures *prometheus.GaugeVec
	updated                                                       prometheus.Gauge
}

func newDORAGauges() *doraGauges {
	l := []string{"service", "environment"}
	g := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, l)
	}
	return &doraGauges{
		perDay:     g("drillship_dora_deployments_per_day", "DORA deployment frequency: deploys promoted over the span the records cover (from the first deploy listed, or the window's start if later, to now; at least a day)."),
		changeFail: g("drillship_dora_change_failure_ratio", "DORA change failure rate: deploys that caused a failure in production (rolled back after reaching all traffic, reverted, hotfixed, or marked by a person) over deploys that reached production; canaries caught before promotion and aborts before traffic are not counted."),
		restore:    g("drillship_dora_time_to_restore_seconds", "DORA time to restore, median: from the failure (failing sample, or marked time, or the bad version reaching stable) to the fix (traffic back on stable, or the revert or hotfix reaching stable)."),
		lead:       g("drillship_dora_lead_time_seconds", "DORA lead time for changes, median: from the commit time given at start to promotion."),
		span:       g("drillship_dora_span_days", "The span, in days, the DORA figures cover."),
		production: g("drillship_dora_production_deploys", "Deploys that reached production in the span: the change failure rate's denominator."),
		failures:   g("drillship_dora_change_failures", "Deploys that caused a failure in production in the span: the change failure rate's numerator."),
		updated:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "drillship_dora_updated_timestamp_seconds", Help: "When the DORA figures were last computed."}),
	}
}

func (d *doraGauges) register(reg *prometheus.Registry) {
	reg.MustRegister(d.perDay, d.changeFail, d.restore, d.lead, d.span, d.production, d.failures, d.updated)
}

// SetDORA replaces the DORA figures with those of results, per service
// and environment.
func (m *Metrics) SetDORA(results []workflows.DeployResult, o dora.Options) map[[2]string]dora.Stats {
	groups := map[[2]string][]workflows.DeployResult{}
	for _, r := range results {
		k := [2]string{r.Service, r.Environment}
		groups[k] = append(groups[k], r)
	}
	d := m.dora
	for _, v := range []*prometheus.GaugeVec{d.perDay, d.changeFail, d.restore, d.lead, d.span, d.production, d.failures} {
		v.Reset()
	}
	out := map[[2]string]dora.Stats{}
	for k, rs := range groups {
		m.touch(k[0], k[1])
		s := dora.Compute(rs, o)
		out[k] = s
		d.perDay.WithLabelValues(k[0], k[1]).Set(s.PerDay)
		d.span.WithLabelValues(k[0], k[1]).Set(s.SpanDays)
		d.production.WithLabelValues(k[0], k[1]).Set(float64(s.Production))
		d.failures.WithLabelValues(k[0], k[1]).Set(float64(len(s.Failures)))
		if s.Production > 0 {
			d.changeFail.WithLabelValues(k[0], k[1]).Set(s.ChangeFail)
		}
		if s.RestoreP50Ms != nil {
			d.restore.WithLabelValues(k[0], k[1]).Set(secs(*s.RestoreP50Ms))
		}
		if s.LeadP50Ms != nil {
			d.lead.WithLabelValues(k[0], k[1]).Set(secs(*s.LeadP50Ms))
		}
	}
	d.updated.SetToCurrentTime()
	return out
}

// WatchDORA recomputes the DORA figures from load every `every` until ctx
// ends. A load that fails keeps the last figures (their timestamp says
// how old they are).
func (m *Metrics) WatchDORA(ctx context.Context, load func(context.Context) ([]workflows.DeployResult, []dora.Mark, error), window, every time.Duration, log *slog.Logger) {
	for {
		lctx, cancel := context.WithTimeout(ctx, every)
		rs, marks, err := load(lctx)
		cancel()
		if err == nil {
			m.SetDORA(rs, dora.Options{Window: window, Marks: marks})
		} else if ctx.Err() == nil && log != nil {
			log.Warn("DORA figures not refreshed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
