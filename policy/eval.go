package policy

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Request is what is asked: may this run, now?
type Request struct {
	Kind        string // deploy | drill
	Service     string
	Environment string
	Hotfix      bool
	Now         time.Time
}

// Decision answers a Request.
type Decision struct {
	Allowed bool `json:"allowed"`
	// Rule names what refused (or, when allowed only as a hotfix, what was
	// passed): "freeze nights", "error budget below 50%", "burn rate page".
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Until is when the refusal ends (Unix ms); 0 when not known (a budget
	// recovers when the SLI does).
	Until int64 `json:"until,omitempty"`
	// HowTo says how to proceed.
	HowTo string `json:"howTo,omitempty"`
	// Hotfix: allowed only because the run is a hotfix; Passed names the
	// rules a hotfix passed, for the record.
	Hotfix bool     `json:"hotfix,omitempty"`
	Passed []string `json:"passed,omitempty"`
}

func (d Decision) String() string {
	if d.Allowed {
		if d.Hotfix {
			return "allowed as a hotfix (passes " + strings.Join(d.Passed, ", ") + ")"
		}
		return "allowed"
	}
	s := "refused by " + d.Rule + ": " + d.Reason
	if d.Until > 0 {
		s += "; until " + time.UnixMilli(d.Until).UTC().Format(time.RFC3339)
	}
	if d.HowTo != "" {
		s += "; " + d.HowTo
	}
	return s
}

// window is one occurrence of a freeze: [from, to).
type window struct{ from, to time.Time }

// occurrence returns the occurrence of f that contains t, if any.
func (f Freeze) occurrence(t time.Time) (window, bool) {
	loc, err := time.LoadLocation(f.Zone)
	if err != nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	if f.Dates != nil {
		from, err1 := day(f.Dates.From, loc, false)
		to, err2 := day(f.Dates.To, loc, true)
		if err1 != nil || err2 != nil {
			return window{}, false
		}
		return window{from, to}, !lt.Before(from) && lt.Before(to)
	}
	w := f.Weekly
	from, _ := clock(w.From, false)
	to, _ := clock(w.To, true)
	// An occurrence starts today or (crossing midnight) yesterday, local
	// time: the dates are built in the zone so a DST change moves the
	// wall-clock bounds, not the hours.
	for back := 0; back <= 1; back++ {
		d := time.Date(lt.Year(), lt.Month(), lt.Day()-back, 0, 0, 0, 0, loc)
		if !f.onDay(d.Weekday()) {
			continue
		}
		start := at(d, from, loc)
		endDay := d
		if to <= from {
			endDay = d.AddDate(0, 0, 1)
		}
		end := at(endDay, to, loc)
		if !lt.Before(start) && lt.Before(end) {
			return window{start, end}, true
		}
	}
	return window{}, false
}

func at(d time.Time, minutes int, loc *time.Location) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day(), minutes/60, minutes%60, 0, 0, loc)
}

func (f Freeze) onDay(wd time.Weekday) bool {
	if len(f.Weekly.Days) == 0 {
		return true
	}
	for _, d := range f.Weekly.Days {
		if dayNames[strings.ToLower(d)] == wd {
			return true
		}
	}
	return false
}

// applies says whether f concerns r at all (kind, service, environment).
func (f Freeze) applies(r Request) bool {
	if len(f.Services) > 0 && !slices.Contains(f.Services, r.Service) {
		return false
	}
	if len(f.Environments) > 0 && !slices.Contains(f.Environments, r.Environment) {
		return false
	}
	if r.Kind == KindDrill {
		return f.Blocks == BlocksDrills || f.Blocks == BlocksAll
	}
	return f.Blocks != BlocksDrills
}

// blocks says whether f refuses r (a hotfix passes non-hotfix freezes).
func (f Freeze) blocks(r Request) bool {
	if !f.applies(r) {
		return false
	}
	return !(r.Kind == KindDeploy && r.Hotfix && f.Blocks == BlocksNonHotfix)
}

// Freeze decides r on the freeze windows alone. Until is the first moment
// no blocking freeze is in effect, so back-to-back windows (weeknights
// then a weekend) give one answer.
func (p *Policy) Freeze(r Request) Decision {
	if p == nil {
		return Decision{Allowed: true}
	}
	var names []string
	end := r.Now
	first := ""
	reason := ""
	// Follow chained windows; a week of back-to-back windows is a
	// misconfiguration, answered with the furthest end found.
	for i := 0; i < 64; i++ {
		moved := false
		for _, f := range p.Freezes {
			if !f.blocks(r) {
				continue
			}
			if w, ok := f.occurrence(end); ok && w.to.After(end) {
				if first == "" {
					first, reason = f.Name, f.Reason
				}
				if !slices.Contains(names, f.Name) {
					names = append(names, f.Name)
				}
				end, moved = w.to, true
			}
		}
		if !moved {
			break
		}
	}
	if first == "" {
		d := Decision{Allowed: true}
		for _, f := range p.Freezes {
			if f.applies(r) {
				if _, ok := f.occurrence(r.Now); ok {
					d.Hotfix = true
					d.Passed = append(d.Passed, "freeze "+f.Name)
				}
			}
		}
		return d
	}
	d := Decision{Rule: "freeze " + strings.Join(names, ", "), Until: end.UnixMilli()}
	d.Reason = fmt.Sprintf("in the freeze window %s until %s", strings.Join(names, " then "), end.In(zoneOf(p, first)).Format("Mon 2006-01-02 15:04 MST"))
	if reason != "" {
		d.Reason += " (" + reason + ")"
	}
	switch {
	case r.Kind == KindDrill:
		d.HowTo = "the drill runs after the window; run it by hand then, or change the policy"
	case !r.Hotfix && p.allowsHotfix(r):
		d.HowTo = "wait until then, or deploy a hotfix with --hotfix (recorded), or break glass with --reason and --incident"
	default:
		d.HowTo = "wait until then, or break glass with --reason and --incident ID of an open incident"
	}
	return d
}

// allowsHotfix: every blocking freeze in effect lets a hotfix through.
func (p *Policy) allowsHotfix(r Request) bool {
	h := r
	h.Hotfix = true
	return p.Freeze(h).Allowed
}

func zoneOf(p *Policy, name string) *time.Location {
	for _, f := range p.Freezes {
		if f.Name == name {
			if loc, err := time.LoadLocation(f.Zone); err == nil {
				return loc
			}
		}
	}
	return time.UTC
}

// Ratio is one error-ratio reading of the SLI over a window.
type Ratio struct {
	Window time.Duration `json:"window"`
	Value  float64       `json:"value"` // bad / all, 0..1
	NoData bool          `json:"noData,omitempty"`
	Detail string        `json:"detail,omitempty"`
}

// BurnRate is how fast a ratio spends the budget: 1 spends exactly the
// budget over the SLO window, 14.4 spends 2% of a 30-day budget an hour.
func BurnRate(ratio, target float64) float64 {
	return ratio / (1 - target)
}

// Remaining is the fraction of the budget left when the error ratio over
// the SLO window is ratio: 1 untouched, 0 spent, below 0 overspent.
func Remaining(ratio, target float64) float64 {
	return 1 - ratio/(1-target)
}

// Budget decides a deploy start on the remaining budget (the SLI over the
// SLO window, in ratio).
func (b *ErrorBudget) Budget(r Request, ratio Ratio) Decision {
	if b == nil || len(b.Thresholds) == 0 {
		return Decision{Allowed: true}
	}
	if ratio.NoData {
		if b.NoData == "allow" {
			return Decision{Allowed: true}
		}
		return Decision{Rule: "error budget unknown", Reason: "the SLI has no data over " + ratio.Window.String() + " (" + ratio.Detail + "), so the remaining budget is not known",
			HowTo: "check the SLI query and its provider, or set errorBudget.noData: allow"}
	}
	left := Remaining(ratio.Value, b.SLO.Target)
	// The strictest threshold the budget is under wins.
	ts := slices.Clone(b.Thresholds)
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].Below < ts[j].Below })
	for _, t := range ts {
		if left >= t.Below {
			continue
		}
		rule := fmt.Sprintf("error budget below %s", pct(t.Below))
		why := fmt.Sprintf("%s of the error budget is left (error ratio %.4g over %s against an SLO of %s)", pct(left), ratio.Value, ratio.Window, pct(b.SLO.Target))
		if t.Allow == AllowHotfix && r.Hotfix {
			return Decision{Allowed: true, Hotfix: true, Passed: []string{rule}}
		}
		d := Decision{Rule: rule, Reason: why}
		if t.Allow == AllowHotfix {
			d.HowTo = "only hotfixes deploy until the budget recovers: --hotfix (recorded), or break glass with --reason and --incident"
		} else {
			d.HowTo = "nothing deploys until the budget recovers; break glass with --reason and --incident ID of an open incident"
		}
		return d
	}
	return Decision{Allowed: true}
}

// Burn is the verdict of one burn-rate gate.
type Burn struct {
	Rule   string  `json:"rule"`
	Factor float64 `json:"factor"`
	Long   float64 `json:"long"`  // burn rate over the long window
	Short  float64 `json:"short"` // over the short one
	// The windows, for the record.
	LongWindow  time.Duration `json:"longWindow"`
	ShortWindow time.Duration `json:"shortWindow"`
	Tripped     bool          `json:"tripped"`
	NoData      bool          `json:"noData,omitempty"`
}

func (b Burn) String() string {
	return fmt.Sprintf("burn rate %s: %.3gx over the long window (%s) and %.3gx over the short one (%s) (gate %.3gx on both)", b.Rule, b.Long, b.LongWindow, b.Short, b.ShortWindow, b.Factor)
}

// Windows lists the windows the burn-rate gates read, shortest first.
func (b *ErrorBudget) Windows() []time.Duration {
	var ws []time.Duration
	if b == nil {
		return nil
	}
	for _, r := range b.BurnRate {
		for _, w := range []time.Duration{r.Long.D(), r.Short.D()} {
			if !slices.Contains(ws, w) {
				ws = append(ws, w)
			}
		}
	}
	slices.Sort(ws)
	return ws
}

// Burns judges the burn-rate gates on readings (by window). A gate whose
// windows have no data does not trip: it has seen nothing (the canary's
// own analysis judges a canary without traffic).
func (b *ErrorBudget) Burns(readings []Ratio) []Burn {
	if b == nil {
		return nil
	}
	byWindow := map[time.Duration]Ratio{}
	for _, r := range readings {
		byWindow[r.Window] = r
	}
	var out []Burn
	for _, r := range b.BurnRate {
		l, okL := byWindow[r.Long.D()]
		s, okS := byWindow[r.Short.D()]
		br := Burn{Rule: r.Name, Factor: r.Factor, LongWindow: r.Long.D(), ShortWindow: r.Short.D()}
		if !okL || !okS || l.NoData || s.NoData {
			br.NoData = true
			out = append(out, br)
			continue
		}
		br.Long, br.Short = BurnRate(l.Value, b.SLO.Target), BurnRate(s.Value, b.SLO.Target)
		// A rate written as exactly the factor (0.0144 of a 0.999 SLO is
		// 14.4x) must trip despite float rounding.
		limit := r.Factor * (1 - 1e-9)
		br.Tripped = br.Long >= limit && br.Short >= limit && !math.IsNaN(br.Long) && !math.IsNaN(br.Short)
		out = append(out, br)
	}
	return out
}

// Tripped returns the first tripped gate, if any.
func Tripped(bs []Burn) (Burn, bool) {
	for _, b := range bs {
		if b.Tripped {
			return b, true
		}
	}
	return Burn{}, false
}

func pct(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", f*100), "0"), ".") + "%"
}

// MayBreakGlass says whether who may break glass with incident, before the
// incident itself is checked.
func (p *Policy) MayBreakGlass(who, reason, incident string) error {
	if p == nil {
		return nil
	}
	if len(strings.TrimSpace(reason)) < 3 {
		return fmt.Errorf("break-glass needs a written reason (--reason \"why this cannot wait\")")
	}
	if len(p.BreakGlass.Who) > 0 && !slices.Contains(p.BreakGlass.Who, who) {
		return fmt.Errorf("%s may not break glass (policy %s allows: %s)", who, p.File, strings.Join(p.BreakGlass.Who, ", "))
	}
	if p.BreakGlass.RequireIncident && strings.TrimSpace(incident) == "" {
		return fmt.Errorf("break-glass needs an incident in progress (--incident ID; policy %s)", p.File)
	}
	return nil
}
