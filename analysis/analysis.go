// Package analysis judges a canary from SLI samples. It is pure: no I/O, no
// clock, so the same numbers always give the same verdict and the rules are
// tested without Temporal.
package analysis

import (
	"fmt"
	"sort"
	"strings"

	"github.com/drillship/drillship/specfile"
)

// Metric is one SLI with its thresholds, as a deploy spec writes it.
type Metric struct {
	Name   string            `yaml:"name" json:"name"`
	Metric string            `yaml:"metric" json:"metric"`
	Expr   string            `yaml:"expr,omitempty" json:"expr,omitempty"`
	Window specfile.Duration `yaml:"window,omitempty" json:"window,omitempty"`
	// Max fails a sample whose canary value is above it.
	Max *float64 `yaml:"max,omitempty" json:"max,omitempty"`
	// MaxVsBaseline fails a sample whose canary value is above the stable
	// version's times this ratio (1.5 = 50% worse).
	MaxVsBaseline *float64 `yaml:"maxVsBaseline,omitempty" json:"maxVsBaseline,omitempty"`
	// IgnoreBelow: canary values under it never fail the comparison, so that
	// 0.2% against 0.1% errors is not called a regression.
	IgnoreBelow float64 `yaml:"ignoreBelow,omitempty" json:"ignoreBelow,omitempty"`
	// CanaryScope and BaselineScope override the default scopes
	// ({version: <canary>} and {version: <stable>}); the values "{{canary}}"
	// and "{{stable}}" are replaced by the versions.
	CanaryScope   map[string]string `yaml:"canaryScope,omitempty" json:"canaryScope,omitempty"`
	BaselineScope map[string]string `yaml:"baselineScope,omitempty" json:"baselineScope,omitempty"`
	// Params go to the provider as they are.
	Params map[string]string `yaml:"params,omitempty" json:"params,omitempty"`
}

// Verdict outcomes.
const (
	Pass         = "pass"
	Fail         = "fail"
	Inconclusive = "inconclusive"
)

// Result is one metric's part of a verdict, with the numbers behind it.
type Result struct {
	Name     string   `json:"name"`
	Canary   float64  `json:"canary"`
	Baseline *float64 `json:"baseline,omitempty"`
	Outcome  string   `json:"outcome"`
	Reason   string   `json:"reason,omitempty"`
}

// Verdict is the judgement of one sample of every metric.
type Verdict struct {
	At      int64    `json:"at"` // when the canary was observed, Unix ms
	Outcome string   `json:"outcome"`
	Reason  string   `json:"reason,omitempty"`
	Results []Result `json:"results"`
}

// Value is one reading: the value, when it was observed (Unix ms), and
// whether there was data at all.
type Value struct {
	Value  float64
	At     int64
	NoData bool
}

// Observation is what was read for one metric.
type Observation struct {
	Canary   Value
	Baseline *Value // nil when the metric has no comparison
}

// Scopes returns the canary and baseline scopes of m for the two versions.
func (m Metric) Scopes(canary, stable string) (c, b map[string]string) {
	fill := func(in map[string]string, def string) map[string]string {
		if len(in) == 0 {
			return map[string]string{"version": def}
		}
		out := make(map[string]string, len(in))
		for k, v := range in {
			v = strings.ReplaceAll(v, "{{canary}}", canary)
			out[k] = strings.ReplaceAll(v, "{{stable}}", stable)
		}
		return out
	}
	return fill(m.CanaryScope, canary), fill(m.BaselineScope, stable)
}

// Judge turns one observation per metric into a verdict. requests is the
// number of canary requests in the window; below minRequests the verdict is
// inconclusive, as a 0% error rate over two requests proves nothing.
func Judge(metrics []Metric, obs map[string]Observation, requests float64, minRequests int) Verdict {
	v := Verdict{Outcome: Pass}
	var failed, unknown []string
	for _, m := range metrics {
		o, ok := obs[m.Name]
		r := judgeOne(m, o, ok)
		if o.Canary.At > v.At {
			v.At = o.Canary.At
		}
		switch r.Outcome {
		case Fail:
			failed = append(failed, r.Name+": "+r.Reason)
		case Inconclusive:
			unknown = append(unknown, r.Name+": "+r.Reason)
		}
		v.Results = append(v.Results, r)
	}
	if minRequests > 0 && requests < float64(minRequests) && len(failed) == 0 {
		unknown = append(unknown, fmt.Sprintf("only %.0f canary requests in the window (minRequests %d)", requests, minRequests))
	}
	sort.Strings(failed)
	switch {
	case len(failed) > 0:
		v.Outcome, v.Reason = Fail, strings.Join(failed, "; ")
	case len(unknown) > 0:
		v.Outcome, v.Reason = Inconclusive, strings.Join(unknown, "; ")
	}
	return v
}

func judgeOne(m Metric, o Observation, ok bool) Result {
	r := Result{Name: m.Name, Canary: o.Canary.Value, Outcome: Pass}
	if !ok || o.Canary.NoData {
		r.Outcome, r.Reason = Inconclusive, "no data for the canary"
		return r
	}
	if m.Max != nil && o.Canary.Value > *m.Max {
		r.Outcome = Fail
		r.Reason = fmt.Sprintf("%s %.4g above max %.4g", m.Metric, o.Canary.Value, *m.Max)
		return r
	}
	if m.MaxVsBaseline != nil {
		if o.Baseline == nil || o.Baseline.NoData {
			r.Outcome, r.Reason = Inconclusive, "no data for the baseline"
			return r
		}
		b := o.Baseline.Value
		r.Baseline = &b
		limit := b * *m.MaxVsBaseline
		if o.Canary.Value > limit && o.Canary.Value >= m.IgnoreBelow {
			r.Outcome = Fail
			r.Reason = fmt.Sprintf("%s %.4g above %.4gx baseline %.4g", m.Metric, o.Canary.Value, *m.MaxVsBaseline, b)
		}
	}
	return r
}
