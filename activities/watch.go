package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/drillship/drillship/analysis"
)

// WatchInput asks for a canary to be watched for a window.
//
// Watching is one long activity with heartbeats rather than a timer and an
// activity per sample in the workflow: history stays a handful of events per
// window however long the window is, and the failing sample is acted on at
// once instead of at the workflow's next turn.
type WatchInput struct {
	Signals      Target            `json:"signals"`
	Metrics      []analysis.Metric `json:"metrics"`
	Canary       string            `json:"canary"`
	Stable       string            `json:"stable"`
	Interval     time.Duration     `json:"interval"`
	Duration     time.Duration     `json:"duration"`
	Forever      bool              `json:"forever"` // watch until cancelled (a paused deploy)
	FailureLimit int               `json:"failureLimit"`
	MinRequests  int               `json:"minRequests"`
	// Baseline is false at 100%: no stable traffic is left to compare with,
	// so comparison-only metrics are skipped.
	Baseline bool `json:"baseline"`
}

// WatchResult is how a window went.
type WatchResult struct {
	Failed       bool               `json:"failed"`
	FailedAt     int64              `json:"failedAt,omitempty"` // the failing sample's time, Unix ms
	Reason       string             `json:"reason,omitempty"`
	Samples      int                `json:"samples"`
	Failures     int                `json:"failures"`
	Inconclusive int                `json:"inconclusive"`
	Last         []analysis.Verdict `json:"last,omitempty"` // the newest few verdicts
}

// WatchProgress is the heartbeat: it lets a retried watch carry on where the
// crashed one stopped, and lets `deploy status` show the live verdict.
type WatchProgress struct {
	StartedAt int64       `json:"startedAt"`
	Result    WatchResult `json:"result"`
}

const keepVerdicts = 5

// Watch samples the canary's metrics every interval for the window and
// returns at the first judgement that exceeds the failure limit.
func (a *Activities) Watch(ctx context.Context, in WatchInput) (WatchResult, error) {
	sig, err := a.Reg.Signals(in.Signals)
	if err != nil {
		return WatchResult{}, wrap("signals", err)
	}
	var p WatchProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &p)
	}
	if p.StartedAt == 0 {
		p.StartedAt = nowMs()
	}
	metrics := in.Metrics
	if !in.Baseline {
		metrics = withoutBaseline(metrics)
	}
	interval := in.Interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	end := time.UnixMilli(p.StartedAt).Add(in.Duration)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	activity.RecordHeartbeat(ctx, p)
	for {
		if !in.Forever && !time.Now().Before(end) {
			return blind(p.Result), nil
		}
		select {
		case <-ctx.Done():
			return p.Result, stopped(ctx)
		case <-tick.C:
		}
		v, err := a.judge(ctx, sig, in, metrics)
		if err != nil {
			// A failed read is not a failed canary: count it inconclusive
			// and keep watching; the provider may be back next tick.
			activity.GetLogger(ctx).Warn("sample failed", "error", err)
			v = analysis.Verdict{At: nowMs(), Outcome: analysis.Inconclusive, Reason: err.Error()}
		}
		r := &p.Result
		r.Samples++
		r.Last = append(r.Last, v)
		if len(r.Last) > keepVerdicts {
			r.Last = r.Last[len(r.Last)-keepVerdicts:]
		}
		switch v.Outcome {
		case analysis.Fail:
			r.Failures++
			if r.Failures > in.FailureLimit {
				r.Failed, r.FailedAt, r.Reason = true, v.At, v.Reason
				return *r, nil
			}
		case analysis.Inconclusive:
			r.Inconclusive++
		}
		activity.RecordHeartbeat(ctx, p)
	}
}

func (a *Activities) judge(ctx context.Context, sig Signals, in WatchInput, metrics []analysis.Metric) (analysis.Verdict, error) {
	obs := map[string]analysis.Observation{}
	var requests float64
	for _, m := range metrics {
		cs, bs := m.Scopes(in.Canary, in.Stable)
		q := Query{Metric: m.Metric, Expr: m.Expr, Window: m.Window.D(), Scope: cs, Params: m.Params}
		c, err := sig.Sample(ctx, q)
		if err != nil {
			return analysis.Verdict{}, err
		}
		o := analysis.Observation{Canary: analysis.Value{Value: c.Value, At: c.At, NoData: c.NoData}}
		if m.MaxVsBaseline != nil {
			q.Scope = bs
			b, err := sig.Sample(ctx, q)
			if err != nil {
				return analysis.Verdict{}, err
			}
			o.Baseline = &analysis.Value{Value: b.Value, At: b.At, NoData: b.NoData}
		}
		obs[m.Name] = o
	}
	if in.MinRequests > 0 && len(metrics) > 0 {
		cs, _ := metrics[0].Scopes(in.Canary, in.Stable)
		w := metrics[0].Window.D()
		if w <= 0 {
			w = 10 * time.Second
		}
		r, err := sig.Sample(ctx, Query{Metric: MetricRequests, Scope: cs, Window: w})
		if err != nil {
			return analysis.Verdict{}, err
		}
		requests = r.Value * w.Seconds()
	}
	return analysis.Judge(metrics, obs, requests, in.MinRequests), nil
}

// blind fails a window whose samples were mostly inconclusive: a canary
// nobody could observe (the metrics backend down, no traffic) is not a
// canary that passed. At least half the samples must be conclusive.
func blind(r WatchResult) WatchResult {
	if r.Failed || r.Samples == 0 {
		return r
	}
	if conclusive := r.Samples - r.Inconclusive; conclusive*2 < r.Samples {
		r.Failed = true
		r.Reason = fmt.Sprintf("signals unavailable: %d of %d samples inconclusive", r.Inconclusive, r.Samples)
		if n := len(r.Last); n > 0 {
			r.FailedAt = r.Last[n-1].At
			if why := r.Last[n-1].Reason; why != "" {
				r.Reason += " (last: " + why + ")"
			}
		}
	}
	return r
}

func withoutBaseline(ms []analysis.Metric) []analysis.Metric {
	var out []analysis.Metric
	for _, m := range ms {
		if m.Max == nil {
			continue
		}
		m.MaxVsBaseline = nil
		out = append(out, m)
	}
	return out
}
