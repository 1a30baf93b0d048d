package policy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
)

// BudgetInput reads the SLI over the SLO window (the whole service).
func (b *ErrorBudget) BudgetInput() activities.RatiosInput {
	return activities.RatiosInput{Signals: b.SLO.Signals, Good: b.SLO.SLI.Good, Total: b.SLO.SLI.Total,
		ErrorRatio: b.SLO.SLI.ErrorRatio, Windows: []time.Duration{b.SLO.Window.D()}}
}

// BurnInput reads the burn-rate windows; version narrows them to a canary
// ("" for the whole service).
func (b *ErrorBudget) BurnInput(version string) activities.RatiosInput {
	sli := b.SLO.SLI
	if version != "" && sli.Canary != nil {
		sli = *sli.Canary
	}
	return activities.RatiosInput{Signals: b.SLO.Signals, Good: sli.Good, Total: sli.Total,
		ErrorRatio: sli.ErrorRatio, Windows: b.Windows(), Version: version}
}

// Ratios converts readings.
func Ratios(rs []activities.RatioReading) []Ratio {
	out := make([]Ratio, len(rs))
	for i, r := range rs {
		out[i] = Ratio{Window: r.Window, Value: r.Value, NoData: r.NoData, Detail: r.Detail}
	}
	return out
}

// Incident is the provider call that verifies id; nil when the policy
// takes incident references as given.
func (p *Policy) Incident(id string) *activities.IncidentInput {
	if p == nil || p.BreakGlass.Incidents == nil {
		return nil
	}
	ip := p.BreakGlass.Incidents
	return &activities.IncidentInput{Provider: ip.Provider, ID: id, URL: ip.URL, Field: ip.Field, Open: ip.Open, Headers: ip.Headers, Timeout: ip.Timeout.D()}
}

// BurnDecision turns a tripped burn-rate gate into a refusal.
func BurnDecision(b Burn, scope string) Decision {
	return Decision{Rule: "burn rate " + b.Rule, Reason: scope + " " + b.String(),
		HowTo: "find what burns the budget first; break glass with --reason and --incident if this deploy is the fix"}
}

// Readings are the signal readings behind a decision, for its record.
type Readings struct {
	Budget *Ratio `json:"budget,omitempty"`
	Burns  []Burn `json:"burns,omitempty"`
}

// Check decides r with everything the policy has: freezes, the remaining
// budget and the service's burn rates, read through reg. It is what
// `policy check` and `deploy start` ask; the workflow asks the same
// questions through activities.
func (p *Policy) Check(ctx context.Context, reg *activities.Registry, r Request) (Decision, Readings, error) {
	var rd Readings
	if p == nil {
		return Decision{Allowed: true}, rd, nil
	}
	d := p.Freeze(r)
	if !d.Allowed || p.ErrorBudget == nil || r.Kind != KindDeploy {
		return d, rd, nil
	}
	passed := d.Passed
	b := p.ErrorBudget
	if len(b.Thresholds) > 0 {
		rs, err := activities.ReadErrorRatios(ctx, reg, b.BudgetInput())
		if err != nil {
			rs = []activities.RatioReading{{Window: b.SLO.Window.D(), NoData: true, Detail: err.Error()}}
		}
		ratio := Ratios(rs)[0]
		rd.Budget = &ratio
		bd := b.Budget(r, ratio)
		if !bd.Allowed {
			return bd, rd, nil
		}
		passed = append(passed, bd.Passed...)
	}
	if len(b.BurnRate) > 0 {
		rs, err := activities.ReadErrorRatios(ctx, reg, b.BurnInput(""))
		if err != nil {
			return Decision{}, rd, fmt.Errorf("burn rates: %w", err)
		}
		rd.Burns = b.Burns(Ratios(rs))
		if t, ok := Tripped(rd.Burns); ok {
			return BurnDecision(t, "the service's"), rd, nil
		}
	}
	out := Decision{Allowed: true, Passed: passed, Hotfix: len(passed) > 0}
	return out, rd, nil
}

// Summary is a one-line account of a decision for logs and the record.
func (d Decision) Summary() string {
	return strings.TrimSpace(d.String())
}
