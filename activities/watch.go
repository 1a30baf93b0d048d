package activities

// The evidence rule. A watch window passes only on evidence: at least
// MinConclusive conclusive samples (a pass or fail verdict; by default half
// the samples the window holds, ceil(Duration/Interval/2), never fewer than
// one), with no more failed samples than FailureLimit. Elapsed time is not
// evidence: a window that ends with too few conclusive samples fails with
// Insufficient set and the reason "insufficient evidence: N conclusive
// samples of M needed (K inconclusive, E errors, U ms unobserved)", so a
// window with no samples never passes. Every sample is recorded in the
// heartbeat before it is acted on. When a worker dies, the retry carries on
// from the last heartbeat that reached the server: the time from the last
// sample it holds to the retry's start is unobserved (each sample vouches
// for the interval before it, and the one that would have covered the
// interval after the last was never taken or never reached the server),
// is recorded as a Gap, and moves the window's end later by as much, so a
// window always contains Duration of watched time and a retry never passes
// on what it did not see. Provider errors are
// inconclusive samples; more than ConsecutiveErrorLimit in a row (default 4)
// fail the window, and a permanent one (a PromQL typo, a 4xx from the
// provider) fails it at once with the provider's message. Each sample has
// SampleTimeout to answer; a late one is an error. A Forever watch (a canary
// held while paused or awaiting approval) applies the same rule to each
// consecutive period of Duration (10 intervals when 0) and fails on the
// first period with too few conclusive samples.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/drillship/drillship/analysis"
	"github.com/drillship/drillship/specfile"
)

// WatchInput asks for a canary to be watched for a window.
//
// Watching is one long activity with heartbeats rather than a timer and an
// activity per sample in the workflow: history stays a handful of events per
// window however long the window is, and the failing sample is acted on at
// once instead of at the workflow's next turn.
type WatchInput struct {
	Signals  Target            `json:"signals"`
	Metrics  []analysis.Metric `json:"metrics"`
	Canary   string            `json:"canary"`
	Stable   string            `json:"stable"`
	Interval time.Duration     `json:"interval"` // 0: 5s
	// Duration is the window: how long the canary must be watched (not
	// merely how long it must run). Forever judges each period of Duration
	// (10 intervals when 0) and returns only on failure or cancellation.
	Duration     time.Duration `json:"duration"`
	Forever      bool          `json:"forever"` // watch until cancelled (a held deploy)
	FailureLimit int           `json:"failureLimit"`
	MinRequests  int           `json:"minRequests"`
	// Baseline is false at 100%: no stable traffic is left to compare with,
	// so comparison-only metrics are skipped.
	Baseline bool `json:"baseline"`
	// MinConclusive is the conclusive samples a window (or a Forever
	// period) needs to pass; 0: ceil(Duration/Interval/2), at least 1.
	MinConclusive int `json:"minConclusive,omitempty"`
	// ConsecutiveErrorLimit is the provider errors in a row tolerated; 0: 4.
	ConsecutiveErrorLimit int `json:"consecutiveErrorLimit,omitempty"`
	// SampleTimeout bounds one sample (every query of it); 0: the interval,
	// but at least 5s and at most 30s.
	SampleTimeout time.Duration `json:"sampleTimeout,omitempty"`
}

// Gap is a time during which no worker watched the canary (Unix ms), found
// by the attempt that resumed after it.
type Gap struct {
	From    int64 `json:"from"`
	To      int64 `json:"to"`
	Attempt int   `json:"attempt"`
}

// WatchResult is how a window went. Failed with Insufficient means too
// little evidence, not a bad value.
type WatchResult struct {
	Failed       bool               `json:"failed"`
	FailedAt     int64              `json:"failedAt,omitempty"` // the failing sample's time, Unix ms
	Reason       string             `json:"reason,omitempty"`
	Samples      int                `json:"samples"`
	Failures     int                `json:"failures"`
	Inconclusive int                `json:"inconclusive"`   // provider errors included
	Last         []analysis.Verdict `json:"last,omitempty"` // the newest few verdicts
	Conclusive   int                `json:"conclusive"`
	Errors       int                `json:"errors"`    // provider errors (counted inconclusive too)
	StartedAt    int64              `json:"startedAt"` // the first attempt's start, Unix ms
	EndedAt      int64              `json:"endedAt"`
	UnobservedMs int64              `json:"unobservedMs"` // time no worker was watching (crash gaps, lost heartbeats)
	Gaps         []Gap              `json:"gaps,omitempty"`
	Attempts     int                `json:"attempts"`
	Insufficient bool               `json:"insufficient,omitempty"` // failed for lack of evidence, not on a bad value
}

// WatchProgress is the heartbeat: it lets a retried watch carry on where the
// crashed one stopped, and lets `deploy status` show the live verdict. It is
// recorded after every sample, before the sample is acted on, and holds the
// whole result so far.
type WatchProgress struct {
	StartedAt int64       `json:"startedAt"`
	Result    WatchResult `json:"result"`
	// LastAt is when the newest sample was taken (or watching began): a
	// retry counts the time since as unobserved.
	LastAt int64 `json:"lastAt,omitempty"`
	// Period is the window being judged (for Forever, the current period):
	// when it began and what it has seen. Its end is its start plus the
	// window plus its unobserved time.
	PeriodAt          int64             `json:"periodAt,omitempty"`
	Period            analysis.Evidence `json:"period"`
	ConsecutiveErrors int               `json:"consecutiveErrors,omitempty"`
}

const (
	keepVerdicts = 5
	keepGaps     = 20
)

// watchInterval is the sampling interval, 5s when unset.
func watchInterval(in time.Duration) time.Duration {
	if in <= 0 {
		return 5 * time.Second
	}
	return in
}

// watchSampleTimeout is one sample's deadline: given, or the interval held
// between 5s (a loaded Prometheus answers in seconds) and 30s (longer is
// not a canary being watched).
func watchSampleTimeout(interval, given time.Duration) time.Duration {
	if given > 0 {
		return given
	}
	return min(max(watchInterval(interval), 5*time.Second), 30*time.Second)
}

// WatchHeartbeatTimeout is the heartbeat timeout the workflow must give a
// watch with this interval and sample timeout (0: the default). The watch
// heartbeats after every sample, so heartbeats are at most one interval plus
// one sample apart; the timeout adds 2s of slack so that a slow Prometheus
// read is not taken for a dead worker.
func WatchHeartbeatTimeout(interval, sampleTimeout time.Duration) time.Duration {
	interval = watchInterval(interval)
	return interval + watchSampleTimeout(interval, sampleTimeout) + 2*time.Second
}

// cancelled is what a watch returns when its context ends. A cancellation
// the workflow asked for (a hold ended, a person acted) is expected: the
// error is benign (kept out of error logs), not retried, and carries what
// the watch saw as the CanceledError's details, which a workflow that waits
// for the cancellation (WaitForCancellation) puts in its step records; the
// SDK finds the CanceledError through the wrapping. Anything else ending the
// context (this worker shutting down, the activity paused) is retryable, so
// another worker resumes the window from the heartbeat instead of the deploy
// failing.
func (w *watcher) cancelled(ctx context.Context, p *WatchProgress) (WatchResult, error) {
	cause := context.Cause(ctx)
	if temporal.IsCanceledError(cause) {
		// No last heartbeat: the server refuses it once the cancellation
		// is delivered, and the details carry the result instead.
		p.Result.EndedAt = nowMs()
		r := p.Result
		return r, temporal.NewApplicationErrorWithOptions("watch stopped: "+cause.Error(), "Stopped",
			temporal.ApplicationErrorOptions{NonRetryable: true, Category: temporal.ApplicationErrorCategoryBenign, Cause: temporal.NewCanceledError(r)})
	}
	// The SDK sends the last heartbeat with a failed attempt: the retry
	// resumes from everything seen here.
	r := w.finish(p)
	return r, temporal.NewApplicationErrorWithOptions("watch interrupted ("+cause.Error()+"); the next attempt resumes from the last heartbeat",
		"Interrupted", temporal.ApplicationErrorOptions{Category: temporal.ApplicationErrorCategoryBenign, Cause: cause})
}

// Watch samples the canary's metrics every interval and judges them by the
// evidence rule (see the top of this file). It returns a failed result (and
// no error) on a failed judgement, too little evidence, or a provider that
// cannot be read; an error only when the signals provider cannot be built or
// the watch is cancelled. On cancellation the result so far travels as the
// CanceledError's details, which a workflow waiting for the cancellation
// reads (the last heartbeat also holds it, for `deploy status`).
func (a *Activities) Watch(ctx context.Context, in WatchInput) (WatchResult, error) {
	info := activity.GetInfo(ctx)
	w := &watcher{
		in:        in,
		beat:      func(p WatchProgress) { activity.RecordHeartbeat(ctx, p) },
		log:       activity.GetLogger(ctx),
		attempt:   int(info.Attempt),
		scheduled: info.ScheduledTime,
	}
	var prev *WatchProgress
	if activity.HasHeartbeatDetails(ctx) {
		var p WatchProgress
		if err := activity.GetHeartbeatDetails(ctx, &p); err == nil && p.StartedAt > 0 {
			prev = &p
		} else {
			w.log.Warn("watch: heartbeat details unreadable; starting the window afresh", "error", err)
		}
	}
	sig, err := a.Reg.Signals(in.Signals)
	if err != nil {
		now := nowMs()
		return WatchResult{StartedAt: now, EndedAt: now, Attempts: max(w.attempt, 1)}, wrap("signals", err)
	}
	w.sample = func(ctx context.Context) (analysis.Verdict, error) { return judge(ctx, sig, in, w.metrics()) }
	w.lookBack = func(ctx context.Context, extra time.Duration) (analysis.Verdict, error) {
		return judge(ctx, sig, in, lookingBack(w.metrics(), extra))
	}
	return w.run(ctx, prev)
}

// watcher is the watch without Temporal: beat records progress, sample
// takes one sample, attempt and scheduled come from the activity's info.
type watcher struct {
	in     WatchInput
	sample func(context.Context) (analysis.Verdict, error)
	// lookBack takes one sample whose windows reach extra further back:
	// a resumed watch judges the time no worker watched (nil: it cannot).
	lookBack  func(context.Context, time.Duration) (analysis.Verdict, error)
	beat      func(WatchProgress)
	log       log.Logger
	attempt   int
	scheduled time.Time
}

func (w *watcher) metrics() []analysis.Metric {
	if !w.in.Baseline {
		return withoutBaseline(w.in.Metrics)
	}
	return w.in.Metrics
}

// window is the watched time one judgement covers: Duration, or for a
// Forever watch with none 10 intervals; never less than one interval, so
// that a window always has room for a sample.
func (w *watcher) window() time.Duration {
	iv := watchInterval(w.in.Interval)
	d := w.in.Duration
	if w.in.Forever && d <= 0 {
		d = 10 * iv
	}
	return max(d, iv)
}

func (w *watcher) run(ctx context.Context, prev *WatchProgress) (WatchResult, error) {
	iv := watchInterval(w.in.Interval)
	window := w.window()
	need := analysis.MinConclusive(window, iv, w.in.MinConclusive)
	attempt := max(w.attempt, 1)
	now := nowMs()

	var p WatchProgress
	if prev != nil {
		p = *prev
		if p.LastAt == 0 {
			// Details from a watch that did not record when it last
			// sampled: count everything since it began as unobserved.
			p.LastAt, p.PeriodAt = p.StartedAt, p.StartedAt
			p.Result.Conclusive = p.Result.Samples - p.Result.Inconclusive
			p.Period = analysis.Evidence{Conclusive: p.Result.Conclusive, Inconclusive: p.Result.Inconclusive}
		}
		attempt = max(attempt, p.Result.Attempts+1)
		// Nothing after the last sample that reached the server counts,
		// not even the interval after it: no kept sample covers it.
		if now > p.LastAt {
			p.addGap(Gap{From: p.LastAt, To: now, Attempt: attempt})
		}
	} else {
		p = WatchProgress{StartedAt: now, LastAt: now, PeriodAt: now}
		if attempt > 1 && !w.scheduled.IsZero() && w.scheduled.UnixMilli() < now {
			// An earlier attempt died before its first heartbeat: nothing
			// it saw counts, and the window starts now.
			p.addGap(Gap{From: w.scheduled.UnixMilli(), To: now, Attempt: attempt})
		}
	}
	p.Result.StartedAt, p.Result.Attempts = p.StartedAt, attempt
	p.Result.EndedAt = now
	w.beat(p)
	if prev != nil && now > p.LastAt {
		if r, failed := w.judgeGap(ctx, &p, time.Duration(now-p.LastAt)*time.Millisecond); failed {
			return r, nil
		}
	}

	sampleTimeout := watchSampleTimeout(iv, w.in.SampleTimeout)
	tick := time.NewTicker(iv)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return w.cancelled(ctx, &p)
		case <-tick.C:
		}
		v, err := w.bounded(ctx, sampleTimeout, w.sample)
		if ctx.Err() != nil {
			// Cancelled mid-sample: that is the workflow ending the
			// watch, not the provider failing.
			return w.cancelled(ctx, &p)
		}
		now := nowMs()
		r := &p.Result
		r.Samples++
		p.LastAt = now
		if err != nil {
			w.log.Warn("watch: sample failed", "error", err)
			v = analysis.Verdict{At: now, Outcome: analysis.Inconclusive, Reason: err.Error()}
			r.Errors++
			p.Period.Errors++
			p.ConsecutiveErrors++
		} else {
			p.ConsecutiveErrors = 0
		}
		r.Last = append(r.Last, v)
		if len(r.Last) > keepVerdicts {
			r.Last = r.Last[len(r.Last)-keepVerdicts:]
		}
		switch v.Outcome {
		case analysis.Inconclusive:
			r.Inconclusive++
			p.Period.Inconclusive++
		case analysis.Fail:
			r.Failures++
			fallthrough
		default:
			r.Conclusive++
			p.Period.Conclusive++
		}
		r.EndedAt = now
		// Recorded before it is acted on. The SDK sends heartbeats at its
		// throttle interval, so a killed worker may lose the newest few;
		// the retry then counts their time as unobserved.
		w.beat(p)

		switch {
		case err != nil && isPermanent(err):
			return w.fail(&p, now, "signals provider error (permanent): "+err.Error(), false), nil
		case err != nil && analysis.TooManyErrors(p.ConsecutiveErrors, w.in.ConsecutiveErrorLimit):
			return w.fail(&p, now, fmt.Sprintf("signals provider failed %d times in a row (limit %d): %v",
				p.ConsecutiveErrors, errorLimit(w.in.ConsecutiveErrorLimit), err), false), nil
		case v.Outcome == analysis.Fail && r.Failures > w.in.FailureLimit:
			return w.fail(&p, v.At, v.Reason, false), nil
		}
		end := p.PeriodAt + window.Milliseconds() + p.Period.UnobservedMs
		if now < end {
			continue
		}
		if why := p.Period.Shortfall(need); why != "" {
			return w.fail(&p, now, why, true), nil
		}
		if !w.in.Forever {
			return w.finish(&p), nil
		}
		// A held canary: the period passed; judge the next one afresh.
		p.PeriodAt, p.Period = now, analysis.Evidence{}
	}
}

// judgeGap looks back over the time no worker watched (a crash, lost
// heartbeats) with one sample whose windows cover it. The gap stays
// unobserved (it is never counted as evidence), but a canary that failed in
// it is not forgotten: a failing look-back counts as a failed sample for
// every interval it spans, so a canary that served errors while its watcher
// was dead fails the judgement even if it looks healthy again afterwards.
func (w *watcher) judgeGap(ctx context.Context, p *WatchProgress, gap time.Duration) (WatchResult, bool) {
	if w.lookBack == nil || ctx.Err() != nil {
		return WatchResult{}, false
	}
	iv := watchInterval(w.in.Interval)
	v, err := w.bounded(ctx, watchSampleTimeout(iv, w.in.SampleTimeout), func(c context.Context) (analysis.Verdict, error) { return w.lookBack(c, gap) })
	if err != nil || ctx.Err() != nil {
		w.log.Warn("watch: looking back over the unobserved time failed; it stays unobserved", "gap", gap, "error", err)
		return WatchResult{}, false
	}
	v.Reason = fmt.Sprintf("looking back over %s unobserved: %s", gap.Round(100*time.Millisecond), v.Reason)
	r := &p.Result
	r.Last = append(r.Last, v)
	if len(r.Last) > keepVerdicts {
		r.Last = r.Last[len(r.Last)-keepVerdicts:]
	}
	if v.Outcome == analysis.Fail {
		r.Failures += max(1, int(gap/iv))
		if r.Failures > w.in.FailureLimit {
			return w.fail(p, v.At, v.Reason, false), true
		}
	}
	w.beat(*p)
	return WatchResult{}, false
}

// lookingBack returns ms with every window extended by extra (a window
// left to the provider's default gets a default of 10 s first).
func lookingBack(ms []analysis.Metric, extra time.Duration) []analysis.Metric {
	out := make([]analysis.Metric, len(ms))
	for i, m := range ms {
		d := m.Window.D()
		if d <= 0 {
			d = 10 * time.Second
		}
		m.Window = specfile.Duration(d + extra)
		out[i] = m
	}
	return out
}

// bounded takes one sample within timeout. A provider that ignores its
// context is abandoned (its answer, if it ever comes, is dropped) so that a
// hung read cannot stall the watch past its heartbeat timeout.
func (w *watcher) bounded(ctx context.Context, timeout time.Duration, sample func(context.Context) (analysis.Verdict, error)) (analysis.Verdict, error) {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type answer struct {
		v   analysis.Verdict
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		v, err := sample(sctx)
		ch <- answer{v, err}
	}()
	select {
	case a := <-ch:
		if a.err != nil && sctx.Err() != nil && ctx.Err() == nil {
			return a.v, fmt.Errorf("sample timed out after %s: %w", timeout, a.err)
		}
		return a.v, a.err
	case <-sctx.Done():
		if ctx.Err() != nil {
			return analysis.Verdict{}, ctx.Err()
		}
		return analysis.Verdict{}, fmt.Errorf("sample timed out after %s", timeout)
	}
}

func (p *WatchProgress) addGap(g Gap) {
	d := g.To - g.From
	p.Result.UnobservedMs += d
	p.Period.UnobservedMs += d
	p.Result.Gaps = append(p.Result.Gaps, g)
	if len(p.Result.Gaps) > keepGaps {
		p.Result.Gaps = p.Result.Gaps[len(p.Result.Gaps)-keepGaps:]
	}
}

func (w *watcher) fail(p *WatchProgress, at int64, reason string, insufficient bool) WatchResult {
	r := &p.Result
	r.Failed, r.FailedAt, r.Reason, r.Insufficient = true, at, reason, insufficient
	return w.finish(p)
}

// finish stamps the end and leaves the whole result in the last heartbeat,
// where `deploy status` finds it even when the watch was cancelled.
func (w *watcher) finish(p *WatchProgress) WatchResult {
	p.Result.EndedAt = nowMs()
	w.beat(*p)
	return p.Result
}

func errorLimit(n int) int {
	if n <= 0 {
		return analysis.DefaultConsecutiveErrorLimit
	}
	return n
}

// isPermanent reports a provider error that no later sample can get past:
// one a provider marked permanent, or a non-retryable Temporal error.
func isPermanent(err error) bool {
	if IsPermanent(err) {
		return true
	}
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.NonRetryable()
}

// judge takes one sample of every metric and judges it. With no metric left
// to judge (only comparisons with a stable version, which has no traffic at
// 100%) the sample is inconclusive: a canary nobody measured has not passed.
func judge(ctx context.Context, sig Signals, in WatchInput, metrics []analysis.Metric) (analysis.Verdict, error) {
	if len(metrics) == 0 {
		return analysis.Verdict{At: nowMs(), Outcome: analysis.Inconclusive,
			Reason: "no metric applies at this weight (a comparison with stable needs stable traffic; add a max)"}, nil
	}
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
