package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/drillship/drillship/ledger"
)

// Check is a signal with a threshold: it fails when the value is above Max
// or below Min. A probe is a Check on "up" with min 1.
type Check struct {
	Name   string  `json:"name" yaml:"name"`
	Target *Target `json:"target,omitempty" yaml:"target,omitempty"` // default: the spec's signals target
	Query  `yaml:",inline"`
	Max    *float64 `json:"max,omitempty" yaml:"max,omitempty"`
	Min    *float64 `json:"min,omitempty" yaml:"min,omitempty"`
	// For: a guardrail trips only when the check has failed this long.
	For time.Duration `json:"for,omitempty" yaml:"for,omitempty"`
	// MinRequests: a reading over fewer requests than this in the check's
	// window (request_rate in the same scope and window) is inconclusive.
	// 0 asks for no count; a reading with no data is inconclusive anyway.
	MinRequests float64 `json:"minRequests,omitempty" yaml:"minRequests,omitempty"`
}

// CheckResult is one evaluation of a check. An inconclusive result (no
// data, too few requests, a failed read) neither passes nor fails: OK is
// false and Inconclusive true.
type CheckResult struct {
	Name         string  `json:"name"`
	Value        float64 `json:"value"`
	At           int64   `json:"at"`
	OK           bool    `json:"ok"`
	Inconclusive bool    `json:"inconclusive,omitempty"`
	Detail       string  `json:"detail,omitempty"`
}

// Failed reports a conclusive failure.
func (r CheckResult) Failed() bool { return !r.OK && !r.Inconclusive }

// Eval judges a sample against the check. No data fails a Min check (a
// probe that got no answer is down) and is inconclusive for a Max check: no
// traffic proves nothing about errors or latency.
func (c Check) Eval(s Sample) CheckResult {
	r := CheckResult{Name: c.Name, Value: s.Value, At: s.At, OK: true, Detail: s.Detail}
	switch {
	case s.NoData && c.Min != nil:
		r.OK, r.Detail = false, "no data"
	case s.NoData:
		r.OK, r.Inconclusive, r.Detail = false, true, "no data (no requests in the window?): inconclusive"
	case c.Max != nil && s.Value > *c.Max:
		r.OK, r.Detail = false, fmt.Sprintf("%s %.4g above %.4g", c.Metric, s.Value, *c.Max)
	case c.Min != nil && s.Value < *c.Min:
		r.OK, r.Detail = false, fmt.Sprintf("%s %.4g below %.4g", c.Metric, s.Value, *c.Min)
	}
	return r
}

// ChecksInput evaluates checks against a default signals target.
type ChecksInput struct {
	Signals Target  `json:"signals"`
	Checks  []Check `json:"checks"`
}

// evalAll reads every check. A check whose read fails is inconclusive and
// the others are still read: one broken query must not blind the rest. The
// error is non-nil only for a permanent failure (a bad query, bad
// settings), which no retry fixes.
func (a *Activities) evalAll(ctx context.Context, in ChecksInput) ([]CheckResult, error) {
	out := make([]CheckResult, 0, len(in.Checks))
	var permanent []error
	for _, c := range in.Checks {
		r, err := a.evalOne(ctx, in.Signals, c)
		if err != nil {
			if IsPermanent(err) {
				permanent = append(permanent, err)
			}
			activity.GetLogger(ctx).Warn("check failed to read", "check", c.Name, "error", err)
			r = CheckResult{Name: c.Name, At: nowMs(), Inconclusive: true, Detail: "read failed: " + err.Error()}
		}
		out = append(out, r)
	}
	return out, errors.Join(permanent...)
}

func (a *Activities) evalOne(ctx context.Context, signals Target, c Check) (CheckResult, error) {
	t := signals
	if c.Target != nil {
		t = *c.Target
	}
	sig, err := a.Reg.Signals(t)
	if err != nil {
		return CheckResult{}, wrap("signals for check "+c.Name, err)
	}
	s, err := sig.Sample(ctx, c.Query)
	if err != nil {
		return CheckResult{}, wrap("check "+c.Name, err)
	}
	if s.At == 0 {
		s.At = nowMs()
	}
	r := c.Eval(s)
	if c.MinRequests <= 0 || r.Inconclusive {
		return r, nil
	}
	w := c.Window
	if w <= 0 {
		w = 10 * time.Second
	}
	rr, err := sig.Sample(ctx, Query{Metric: MetricRequests, Scope: c.Scope, Window: w})
	if err != nil {
		return CheckResult{}, wrap("request count for check "+c.Name, err)
	}
	if n := rr.Value * w.Seconds(); rr.NoData || n < c.MinRequests {
		r.OK, r.Inconclusive = false, true
		r.Detail = fmt.Sprintf("only %.0f requests in %s (minRequests %.0f): inconclusive", n, w, c.MinRequests)
	}
	return r, nil
}

// Evaluate reads every check once. A read that fails is an inconclusive
// result, not an error, unless it is permanent.
func (a *Activities) Evaluate(ctx context.Context, in ChecksInput) ([]CheckResult, error) {
	rs, err := a.evalAll(ctx, in)
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// Wait conditions.
const (
	UntilAnyFails = "any-fails" // detection: the first signal fires
	UntilAllPass  = "all-pass"  // mitigation, recovery: every check holds
)

// WaitInput waits for a condition over checks.
type WaitInput struct {
	ChecksInput
	Until    string        `json:"until"`
	Interval time.Duration `json:"interval"`
	// HoldFor: the condition must hold this long without a break.
	HoldFor time.Duration `json:"holdFor,omitempty"`
	// Timeout ends the wait unmet; zero waits until cancelled. It counts
	// observed time: time no worker ran the wait extends it.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// WaitResult says when the condition was first observed (the start of the
// streak that held), or that it timed out.
type WaitResult struct {
	Met      bool          `json:"met"`
	At       int64         `json:"at,omitempty"`
	Samples  int           `json:"samples"`
	Results  []CheckResult `json:"results,omitempty"` // the observation that met it (or the last)
	Detail   string        `json:"detail,omitempty"`
	TimedOut bool          `json:"timedOut,omitempty"`
	// Series holds every reading per check, for the report's chart.
	Series map[string][]ledger.Point `json:"series,omitempty"`
	// Attempts is the activity attempt that returned; Gaps the times no
	// worker ran the wait (a crash), found by the attempts that resumed.
	Attempts     int   `json:"attempts"`
	Gaps         []Gap `json:"gaps,omitempty"`
	UnobservedMs int64 `json:"unobservedMs,omitempty"`
}

// maxPoints bounds the series a wait returns (the payload, not the wait).
const maxPoints = 2000

type waitProgress struct {
	StartedAt int64                     `json:"startedAt"`
	StreakAt  int64                     `json:"streakAt"`
	Samples   int                       `json:"samples"`
	Series    map[string][]ledger.Point `json:"series,omitempty"`
	LastAt    int64                     `json:"lastAt,omitempty"` // when the last sample was taken
	Gaps      []Gap                     `json:"gaps,omitempty"`
}

func unobserved(gaps []Gap) int64 {
	var ms int64
	for _, g := range gaps {
		ms += g.To - g.From
	}
	return ms
}

// resumedGap is the time no worker ran a retried activity that samples
// every interval: from when the sample after the last one the server heard
// of (its heartbeat) was due, to now. Samples taken after the last heartbeat
// that reached the server are lost with the worker, so they count as
// unobserved. An attempt that heartbeated nothing died within its heartbeat
// timeout of starting: that is the bound used then. Nil on a first attempt
// (no heartbeat details, attempt 1).
func resumedGap(ctx context.Context, lastAt int64, interval time.Duration) *Gap {
	info := activity.GetInfo(ctx)
	now := nowMs()
	if info.Attempt <= 1 && !activity.HasHeartbeatDetails(ctx) {
		// A first attempt that waited for a worker longer than a hand-off
		// takes (the worker that was to run it died, none was polling):
		// nothing was checked while it waited.
		scheduled := info.ScheduledTime.UnixMilli()
		if info.ScheduledTime.IsZero() || now-scheduled <= interval.Milliseconds()+time.Second.Milliseconds() {
			return nil
		}
		return &Gap{From: scheduled, To: now, Attempt: int(info.Attempt)}
	}
	from := lastAt + interval.Milliseconds()
	if lastAt == 0 {
		from = info.ScheduledTime.UnixMilli() - info.HeartbeatTimeout.Milliseconds()
	}
	if now <= from {
		return nil
	}
	return &Gap{From: from, To: now, Attempt: int(info.Attempt)}
}

// WaitFor polls the checks every interval until the condition has held for
// HoldFor. The time it returns is what a check observed, never when the
// workflow got round to it: that is what ledger marks are made of. A
// retried attempt resumes from its heartbeat: the unobserved time is a Gap,
// it breaks a HoldFor streak (holding was not seen) and extends Timeout.
func (a *Activities) WaitFor(ctx context.Context, in WaitInput) (WaitResult, error) {
	var p waitProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &p)
	}
	interval := in.Interval
	if interval <= 0 {
		interval = time.Second
	}
	if g := resumedGap(ctx, p.LastAt, interval); g != nil {
		p.Gaps = append(p.Gaps, *g)
		p.StreakAt = 0
	}
	if p.StartedAt == 0 {
		p.StartedAt = nowMs()
	}
	attempt := int(activity.GetInfo(ctx).Attempt)
	result := func(r WaitResult) WaitResult {
		r.Samples, r.Series, r.Attempts, r.Gaps, r.UnobservedMs = p.Samples, p.Series, attempt, p.Gaps, unobserved(p.Gaps)
		return r
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last []CheckResult
	for {
		rs, err := a.evalAll(ctx, in.ChecksInput)
		if err != nil {
			return result(WaitResult{Results: rs, Detail: describe(rs)}), err
		}
		p.Samples++
		p.LastAt = nowMs()
		last = rs
		if p.Series == nil {
			p.Series = map[string][]ledger.Point{}
		}
		for _, r := range rs {
			if !r.Inconclusive && len(p.Series[r.Name]) < maxPoints {
				p.Series[r.Name] = append(p.Series[r.Name], ledger.Point{At: r.At, Value: r.Value})
			}
		}
		met, at := meets(in.Until, rs)
		switch {
		case met && p.StreakAt == 0:
			p.StreakAt = at
		case !met:
			p.StreakAt = 0
		}
		activity.RecordHeartbeat(ctx, p)
		if met && time.Since(time.UnixMilli(p.StreakAt)) >= in.HoldFor {
			return result(WaitResult{Met: true, At: p.StreakAt, Results: rs, Detail: describe(rs)}), nil
		}
		if in.Timeout > 0 && time.Now().After(time.UnixMilli(p.StartedAt+unobserved(p.Gaps)).Add(in.Timeout)) {
			return result(WaitResult{TimedOut: true, Results: last, Detail: describe(last)}), nil
		}
		select {
		case <-ctx.Done():
			return result(WaitResult{Results: last}), stopped(ctx)
		case <-tick.C:
		}
	}
}

// meets reports whether results meet the condition and the observed time:
// the earliest failing sample for any-fails, the latest sample for
// all-pass (the moment all were seen holding). Inconclusive results never
// meet all-pass and never fire any-fails.
func meets(until string, rs []CheckResult) (bool, int64) {
	var at int64
	switch until {
	case UntilAnyFails:
		for _, r := range rs {
			if r.Failed() && (at == 0 || r.At < at) {
				at = r.At
			}
		}
		return at != 0, at
	default:
		if len(rs) == 0 {
			return false, 0
		}
		for _, r := range rs {
			if !r.OK {
				return false, 0
			}
			if r.At > at {
				at = r.At
			}
		}
		return true, at
	}
}

func describe(rs []CheckResult) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		s := "ok"
		switch {
		case r.Inconclusive:
			s = "INCONCLUSIVE " + r.Detail
		case !r.OK:
			s = "FAIL " + r.Detail
		}
		parts = append(parts, fmt.Sprintf("%s=%.4g (%s)", r.Name, r.Value, s))
	}
	return strings.Join(parts, ", ")
}

// GuardResult says which guardrail tripped and when, and when the
// guardrails were not watched (Gaps). A cancelled Guard returns it as the
// details of its CanceledError.
type GuardResult struct {
	Tripped      bool   `json:"tripped"`
	Name         string `json:"name,omitempty"`
	At           int64  `json:"at,omitempty"`
	Detail       string `json:"detail,omitempty"`
	Samples      int    `json:"samples"`
	Attempts     int    `json:"attempts"`
	Gaps         []Gap  `json:"gaps,omitempty"`
	UnobservedMs int64  `json:"unobservedMs,omitempty"`
}

// guardProgress is the Guard's heartbeat: a retried attempt keeps the time
// each check started failing, so a `for` duration is not restarted by a
// crash.
type guardProgress struct {
	Since   map[string]int64 `json:"since,omitempty"`
	Samples int              `json:"samples"`
	LastAt  int64            `json:"lastAt,omitempty"`
	Gaps    []Gap            `json:"gaps,omitempty"`
}

// Guard watches guardrail checks until cancelled and returns as soon as one
// has failed for its For duration. An inconclusive reading neither trips a
// check nor clears its failing time. When cancelled it returns a
// CanceledError carrying its GuardResult (the gaps), so the caller, waiting
// for the cancellation, learns when the guardrails were blind.
func (a *Activities) Guard(ctx context.Context, in WaitInput) (GuardResult, error) {
	var p guardProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &p)
	}
	if p.Since == nil {
		p.Since = map[string]int64{}
	}
	interval := in.Interval
	if interval <= 0 {
		interval = time.Second
	}
	if g := resumedGap(ctx, p.LastAt, interval); g != nil {
		p.Gaps = append(p.Gaps, *g)
	}
	attempt := int(activity.GetInfo(ctx).Attempt)
	result := func(r GuardResult) GuardResult {
		r.Samples, r.Attempts, r.Gaps, r.UnobservedMs = p.Samples, attempt, p.Gaps, unobserved(p.Gaps)
		return r
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		rs, err := a.evalAll(ctx, in.ChecksInput)
		if err != nil {
			// A guardrail that can never be read guards nothing.
			return result(GuardResult{}), err
		}
		p.Samples++
		p.LastAt = nowMs()
		var tripped *GuardResult
		for i, r := range rs {
			switch {
			case r.Inconclusive:
				continue
			case r.OK:
				delete(p.Since, r.Name)
				continue
			}
			if p.Since[r.Name] == 0 {
				p.Since[r.Name] = r.At
			}
			if tripped == nil && r.At-p.Since[r.Name] >= in.Checks[i].For.Milliseconds() {
				tripped = &GuardResult{Tripped: true, Name: r.Name, At: r.At, Detail: r.Detail}
			}
		}
		activity.RecordHeartbeat(ctx, p)
		if tripped != nil {
			return result(*tripped), nil
		}
		select {
		case <-ctx.Done():
			// Benign: the drill stopping its guard is how every drill ends,
			// not an error for the worker's log.
			return GuardResult{}, temporal.NewApplicationErrorWithOptions("guard stopped", "Stopped",
				temporal.ApplicationErrorOptions{NonRetryable: true, Category: temporal.ApplicationErrorCategoryBenign,
					Cause: temporal.NewCanceledError(result(GuardResult{}))})
		case <-tick.C:
		}
	}
}

// DBInput names a database operation on a node.
type DBInput struct {
	Target Target `json:"target"`
	Op     string `json:"op"` // promote | fence | rebuild
	Node   string `json:"node"`
}

// DBOp promotes, fences or rebuilds a node and returns when it was done.
func (a *Activities) DBOp(ctx context.Context, in DBInput) (ActionResult, error) {
	start := nowMs()
	db, err := a.Reg.Database(in.Target)
	if err != nil {
		return ActionResult{}, wrap("database", err)
	}
	a.observe("db:" + in.Op)
	switch in.Op {
	case "promote":
		err = db.Promote(ctx, in.Node)
	case "fence":
		err = db.Fence(ctx, in.Node)
	case "rebuild":
		err = db.Rebuild(ctx, in.Node)
	default:
		err = Permanent(fmt.Errorf("database op %q is not one of promote, fence, rebuild", in.Op))
	}
	if err != nil {
		return ActionResult{}, wrap(in.Op+" "+in.Node, err)
	}
	return ActionResult{Output: Output{Detail: in.Op + " " + in.Node}, StartedAt: start, EndedAt: nowMs(), Attempt: activity.GetInfo(ctx).Attempt}, nil
}

// WorkloadInput runs a database workload across a drill's fault.
type WorkloadInput struct {
	Target   Target        `json:"target"`
	Interval time.Duration `json:"interval"`
	HoldFor  time.Duration `json:"holdFor"`
}

// Workload runs the database's workload (RTO and RPO measurement). It ends
// on its own once writes failed and then held for HoldFor.
func (a *Activities) Workload(ctx context.Context, in WorkloadInput) (WorkloadResult, error) {
	db, err := a.Reg.Database(in.Target)
	if err != nil {
		return WorkloadResult{}, wrap("database", err)
	}
	w, ok := db.(Workloader)
	if !ok {
		return WorkloadResult{}, wrap("workload", Permanent(fmt.Errorf("provider %s has no workload (RTO/RPO measurement)", in.Target.Provider)))
	}
	r, err := w.Workload(ctx, in.Interval, in.HoldFor, func(d any) { activity.RecordHeartbeat(ctx, d) })
	return r, wrap("workload", err)
}
