package activities

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

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
}

// CheckResult is one evaluation of a check.
type CheckResult struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	At     int64   `json:"at"`
	OK     bool    `json:"ok"`
	Detail string  `json:"detail,omitempty"`
}

// Eval judges a sample against the check. No data fails a Min check (a
// probe that got no answer is down) and passes a Max check (no traffic has
// no errors).
func (c Check) Eval(s Sample) CheckResult {
	r := CheckResult{Name: c.Name, Value: s.Value, At: s.At, OK: true, Detail: s.Detail}
	switch {
	case s.NoData && c.Min != nil:
		r.OK, r.Detail = false, "no data"
	case s.NoData:
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

func (a *Activities) evalAll(ctx context.Context, in ChecksInput) ([]CheckResult, error) {
	out := make([]CheckResult, 0, len(in.Checks))
	for _, c := range in.Checks {
		t := in.Signals
		if c.Target != nil {
			t = *c.Target
		}
		sig, err := a.Reg.Signals(t)
		if err != nil {
			return nil, wrap("signals for check "+c.Name, err)
		}
		s, err := sig.Sample(ctx, c.Query)
		if err != nil {
			return nil, wrap("check "+c.Name, err)
		}
		if s.At == 0 {
			s.At = nowMs()
		}
		out = append(out, c.Eval(s))
	}
	return out, nil
}

// Evaluate reads every check once.
func (a *Activities) Evaluate(ctx context.Context, in ChecksInput) ([]CheckResult, error) {
	return a.evalAll(ctx, in)
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
	// Timeout ends the wait unmet; zero waits until cancelled.
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
}

// maxPoints bounds the series a wait returns (the payload, not the wait).
const maxPoints = 2000

type waitProgress struct {
	StartedAt int64                     `json:"startedAt"`
	StreakAt  int64                     `json:"streakAt"`
	Samples   int                       `json:"samples"`
	Series    map[string][]ledger.Point `json:"series,omitempty"`
}

// WaitFor polls the checks every interval until the condition has held for
// HoldFor. The time it returns is what a check observed, never when the
// workflow got round to it: that is what ledger marks are made of.
func (a *Activities) WaitFor(ctx context.Context, in WaitInput) (WaitResult, error) {
	var p waitProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &p)
	}
	if p.StartedAt == 0 {
		p.StartedAt = nowMs()
	}
	interval := in.Interval
	if interval <= 0 {
		interval = time.Second
	}
	var deadline time.Time
	if in.Timeout > 0 {
		deadline = time.UnixMilli(p.StartedAt).Add(in.Timeout)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last []CheckResult
	for {
		rs, err := a.evalAll(ctx, in.ChecksInput)
		if err != nil {
			if IsPermanent(err) {
				return WaitResult{}, err
			}
			activity.GetLogger(ctx).Warn("check failed to read; retrying next tick", "error", err)
		} else {
			p.Samples++
			last = rs
			if p.Series == nil {
				p.Series = map[string][]ledger.Point{}
			}
			for _, r := range rs {
				if len(p.Series[r.Name]) < maxPoints {
					p.Series[r.Name] = append(p.Series[r.Name], ledger.Point{At: r.At, Value: r.Value})
				}
			}
			if met, at := meets(in.Until, rs); met {
				if p.StreakAt == 0 {
					p.StreakAt = at
				}
				if time.Since(time.UnixMilli(p.StreakAt)) >= in.HoldFor {
					return WaitResult{Met: true, At: p.StreakAt, Samples: p.Samples, Results: rs, Detail: describe(rs), Series: p.Series}, nil
				}
			} else {
				p.StreakAt = 0
			}
		}
		activity.RecordHeartbeat(ctx, p)
		if !deadline.IsZero() && time.Now().After(deadline) {
			return WaitResult{TimedOut: true, Samples: p.Samples, Results: last, Detail: describe(last), Series: p.Series}, nil
		}
		select {
		case <-ctx.Done():
			return WaitResult{Samples: p.Samples, Results: last}, stopped(ctx)
		case <-tick.C:
		}
	}
}

// meets reports whether results meet the condition and the observed time:
// the earliest failing sample for any-fails, the latest sample for
// all-pass (the moment all were seen holding).
func meets(until string, rs []CheckResult) (bool, int64) {
	var at int64
	switch until {
	case UntilAnyFails:
		for _, r := range rs {
			if !r.OK && (at == 0 || r.At < at) {
				at = r.At
			}
		}
		return at != 0, at
	default:
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
		if !r.OK {
			s = "FAIL " + r.Detail
		}
		parts = append(parts, fmt.Sprintf("%s=%.4g (%s)", r.Name, r.Value, s))
	}
	return strings.Join(parts, ", ")
}

// GuardResult says which guardrail tripped and when.
type GuardResult struct {
	Tripped bool   `json:"tripped"`
	Name    string `json:"name,omitempty"`
	At      int64  `json:"at,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// Guard watches guardrail checks until cancelled and returns as soon as one
// has failed for its For duration.
func (a *Activities) Guard(ctx context.Context, in WaitInput) (GuardResult, error) {
	interval := in.Interval
	if interval <= 0 {
		interval = time.Second
	}
	since := map[string]int64{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		rs, err := a.evalAll(ctx, in.ChecksInput)
		if err != nil {
			activity.GetLogger(ctx).Warn("guardrail read failed", "error", err)
		}
		for i, r := range rs {
			if r.OK {
				delete(since, r.Name)
				continue
			}
			if since[r.Name] == 0 {
				since[r.Name] = r.At
			}
			if r.At-since[r.Name] >= in.Checks[i].For.Milliseconds() {
				return GuardResult{Tripped: true, Name: r.Name, At: r.At, Detail: r.Detail}, nil
			}
		}
		activity.RecordHeartbeat(ctx, len(since))
		select {
		case <-ctx.Done():
			return GuardResult{}, stopped(ctx)
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
