package policy

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

const sample = `zone: Europe/Paris
freezes:
  - name: nights
    blocks: non-hotfix
    weekly: {days: [mon, tue, wed, thu, fri], from: "20:00", to: "08:00"}
  - name: weekend
    blocks: non-hotfix
    weekly: {days: [sat, sun], from: "00:00", to: "24:00"}
  - name: peak
    blocks: all
    zone: America/New_York
    weekly: {days: [mon], from: "09:00", to: "11:00"}
  - name: holidays
    blocks: non-hotfix
    dates: {from: "2026-12-24", to: "2026-12-26"}
  - name: drills-off
    blocks: drills
    dates: {from: "2026-12-01", to: "2026-12-01"}
errorBudget:
  slo:
    target: 0.999
    window: 720h
    signals: {provider: local}
    sli:
      errorRatio: {metric: error_rate}
  thresholds:
    - {below: 0.5, allow: hotfix}
    - {below: 0, allow: none}
  burnRate:
    - {name: page, factor: 14.4, long: 1h, short: 5m}
    - {name: ticket, factor: 6, long: 6h, short: 30m}
breakGlass:
  who: [ann, bob]
  requireIncident: true
`

func mustParse(t *testing.T, s string) *Policy {
	t.Helper()
	p, err := Parse("policy.yaml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ts(t *testing.T, s, zone string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFreezeCalendars: weekly windows in their zones (across midnight,
// chained into a weekend, across DST changes), one-off ranges, what each
// blocks, and until when.
func TestFreezeCalendars(t *testing.T) {
	p := mustParse(t, sample)
	cases := []struct {
		name   string
		at     string // local time in zone
		zone   string
		kind   string
		hotfix bool
		allow  bool
		rule   string
		until  string // local time in untilZone; "" not checked
	}{
		{"weekday noon", "2026-11-25 12:00", "Europe/Paris", KindDeploy, false, true, "", ""},
		{"weeknight", "2026-11-25 21:00", "Europe/Paris", KindDeploy, false, false, "freeze nights", "2026-11-26 08:00"},
		{"after midnight, still the night before", "2026-11-26 03:00", "Europe/Paris", KindDeploy, false, false, "freeze nights", "2026-11-26 08:00"},
		{"night just ended", "2026-11-26 08:00", "Europe/Paris", KindDeploy, false, true, "", ""},
		{"friday night runs into the weekend", "2026-11-27 22:00", "Europe/Paris", KindDeploy, false, false, "freeze nights, weekend", "2026-11-30 00:00"},
		{"sunday: weekend then monday's early hours", "2026-11-29 12:00", "Europe/Paris", KindDeploy, false, false, "freeze weekend", "2026-11-30 00:00"},
		{"hotfix passes a non-hotfix night", "2026-11-25 21:00", "Europe/Paris", KindDeploy, true, true, "", ""},
		{"peak in New York, 09:30 there", "2026-11-30 09:30", "America/New_York", KindDeploy, false, false, "freeze peak", ""},
		{"hotfix does not pass an all freeze", "2026-11-30 09:30", "America/New_York", KindDeploy, true, false, "freeze peak", ""},
		{"peak ended at 11:00 New York", "2026-11-30 11:00", "America/New_York", KindDeploy, false, true, "", ""},
		{"holiday range, date-only end is inclusive, then the weekend", "2026-12-24 13:00", "Europe/Paris", KindDeploy, false, false, "freeze holidays, weekend", "2026-12-28 00:00"},
		{"after the holidays", "2026-12-28 13:00", "Europe/Paris", KindDeploy, false, true, "", ""},
		{"a drill freeze blocks drills", "2026-12-01 10:00", "Europe/Paris", KindDrill, false, false, "freeze drills-off", ""},
		{"a drill freeze does not block deploys", "2026-12-01 10:00", "Europe/Paris", KindDeploy, false, true, "", ""},
		{"a deploy freeze does not block drills", "2026-11-25 21:00", "Europe/Paris", KindDrill, false, true, "", ""},
		{"all blocks drills too", "2026-11-30 09:30", "America/New_York", KindDrill, false, false, "freeze peak", ""},
		// Paris leaves summer time on 2026-10-25 03:00 → 02:00: the weekend
		// still ends at monday 00:00 local (25 hours for that sunday).
		{"DST end inside the window: local bounds kept", "2026-10-24 23:00", "Europe/Paris", KindDeploy, false, false, "freeze weekend", "2026-10-26 00:00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := p.Freeze(Request{Kind: c.kind, Service: "web", Hotfix: c.hotfix, Now: ts(t, c.at, c.zone)})
			if d.Allowed != c.allow {
				t.Fatalf("allowed %v (%s), want %v", d.Allowed, d, c.allow)
			}
			if c.rule != "" && d.Rule != c.rule {
				t.Fatalf("rule %q, want %q", d.Rule, c.rule)
			}
			if c.until != "" {
				if want := ts(t, c.until, "Europe/Paris").UnixMilli(); d.Until != want {
					t.Fatalf("until %s, want %s", time.UnixMilli(d.Until).In(ts(t, c.until, "Europe/Paris").Location()), c.until)
				}
			}
			if !d.Allowed && (d.HowTo == "" || d.Reason == "") {
				t.Fatalf("a refusal without a reason or a way to proceed: %+v", d)
			}
			if c.hotfix && d.Allowed && c.kind == KindDeploy && !d.Hotfix && c.name == "hotfix passes a non-hotfix night" {
				t.Fatalf("a hotfix passing a freeze is not marked: %+v", d)
			}
		})
	}
}

// TestFreezeDSTLength: a night 20:00-08:00 is 12 hours, 11 when the clocks
// go forward inside it, 13 when they go back (New York, 2026).
func TestFreezeDSTLength(t *testing.T) {
	p := mustParse(t, `freezes:
  - name: nights
    blocks: all
    zone: America/New_York
    weekly: {from: "20:00", to: "08:00"}
`)
	for _, c := range []struct {
		night string
		want  time.Duration
	}{
		{"2026-03-02 21:00", 11 * time.Hour}, // ordinary: 21:00 to 08:00
		{"2026-03-07 21:00", 10 * time.Hour}, // spring forward on the 8th at 02:00
		{"2026-10-31 21:00", 12 * time.Hour}, // fall back on Nov 1st at 02:00
	} {
		now := ts(t, c.night, "America/New_York")
		d := p.Freeze(Request{Kind: KindDeploy, Now: now})
		if got := time.UnixMilli(d.Until).Sub(now); got != c.want {
			t.Errorf("%s: frozen for %s more, want %s", c.night, got, c.want)
		}
	}
}

// TestBudgetThresholds: the strictest threshold the remaining budget is
// under decides; a hotfix passes "hotfix" but not "none".
func TestBudgetThresholds(t *testing.T) {
	p := mustParse(t, sample)
	b := p.ErrorBudget
	cases := []struct {
		ratio  float64 // error ratio over the SLO window (target 0.999: budget 0.001)
		hotfix bool
		allow  bool
		rule   string
	}{
		{0.0002, false, true, ""},                        // 80% left
		{0.0006, false, false, "error budget below 50%"}, // 40% left
		{0.0006, true, true, ""},                         // a hotfix passes
		{0.0012, false, false, "error budget below 0%"},  // overspent: -20%
		{0.0012, true, false, "error budget below 0%"},   // not even a hotfix
		{0.0005, false, true, ""},                        // exactly half left: not below
	}
	for _, c := range cases {
		d := b.Budget(Request{Kind: KindDeploy, Hotfix: c.hotfix}, Ratio{Window: 720 * time.Hour, Value: c.ratio})
		if d.Allowed != c.allow || d.Rule != c.rule {
			t.Errorf("ratio %v hotfix %v: %s, want allowed %v rule %q", c.ratio, c.hotfix, d, c.allow, c.rule)
		}
	}
	if d := b.Budget(Request{Kind: KindDeploy}, Ratio{Window: time.Hour, NoData: true}); d.Allowed || d.Rule != "error budget unknown" {
		t.Errorf("no data: %s, want refused as unknown", d)
	}
	for _, c := range []struct{ ratio, target, want float64 }{
		{0, 0.999, 1}, {0.001, 0.999, 0}, {0.0005, 0.999, 0.5}, {0.002, 0.999, -1}, {0.01, 0.99, 0},
	} {
		if got := Remaining(c.ratio, c.target); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Remaining(%v, %v) = %v, want %v", c.ratio, c.target, got, c.want)
		}
	}
}

// TestBurnRates: both windows must burn at least the factor; no data
// never trips.
func TestBurnRates(t *testing.T) {
	p := mustParse(t, sample)
	b := p.ErrorBudget
	if got := b.Windows(); len(got) != 4 || got[0] != 5*time.Minute || got[3] != 6*time.Hour {
		t.Fatalf("windows %v", got)
	}
	r := func(vals map[time.Duration]float64) []Ratio {
		var out []Ratio
		for w, v := range vals {
			out = append(out, Ratio{Window: w, Value: v})
		}
		return out
	}
	h, m5, h6, m30 := time.Hour, 5*time.Minute, 6*time.Hour, 30*time.Minute
	cases := []struct {
		name string
		in   []Ratio
		trip string
	}{
		{"quiet", r(map[time.Duration]float64{h: 0.0001, m5: 0.0001, h6: 0.0001, m30: 0.0001}), ""},
		// 1.5% errors: 15x on both page windows; far under a 5% absolute limit.
		{"fast burn", r(map[time.Duration]float64{h: 0.015, m5: 0.015, h6: 0.002, m30: 0.002}), "page"},
		{"long window only: already recovered", r(map[time.Duration]float64{h: 0.015, m5: 0.001, h6: 0.002, m30: 0.002}), ""},
		{"short window only: a blip", r(map[time.Duration]float64{h: 0.002, m5: 0.05, h6: 0.002, m30: 0.002}), ""},
		{"slow burn", r(map[time.Duration]float64{h: 0.007, m5: 0.007, h6: 0.0065, m30: 0.0065}), "ticket"},
		{"exactly the factor trips", r(map[time.Duration]float64{h: 0.0144, m5: 0.0144, h6: 0, m30: 0}), "page"},
		{"no data", []Ratio{{Window: h, NoData: true}, {Window: m5, NoData: true}}, ""},
	}
	for _, c := range cases {
		bs := b.Burns(c.in)
		got, ok := Tripped(bs)
		if (c.trip != "") != ok || ok && got.Rule != c.trip {
			t.Errorf("%s: tripped %v %+v, want %q", c.name, ok, got, c.trip)
		}
		if ok && !strings.Contains(got.String(), "x over the long window") {
			t.Errorf("%s: %q does not give the rates", c.name, got)
		}
	}
	if got := BurnRate(0.0144, 0.999); math.Abs(got-14.4) > 1e-9 {
		t.Errorf("BurnRate = %v", got)
	}
}

// TestParseErrors: problems are reported with file:line, field and what is
// allowed, all at once.
func TestParseErrors(t *testing.T) {
	_, err := Parse("p.yaml", []byte(`zone: Mars/Olympus
freezes:
  - name: nights
    blocks: sometimes
    weekly: {days: [mon, funday], from: "25:00", to: "8"}
  - name: nights
    blocks: all
errorBudget:
  slo: {target: 99.9, window: 720h, signals: {provider: local}, sli: {good: {metric: x}}}
  thresholds: [{below: 0.5, allow: maybe}]
  burnRate: [{name: page, factor: 14.4, long: 5m, short: 1h}]
  noData: shrug
breakGlass:
  incidents: {provider: pagerduty, url: "ftp://x"}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`p.yaml:1: zone: "Mars/Olympus" is not an IANA time zone`,
		`p.yaml:4: freezes[0].blocks: "sometimes" is not allowed (allowed: all, non-hotfix, drills)`,
		`freezes[0].weekly.days[1]: "funday" is not a day`,
		`freezes[0].weekly.from: "25:00"`,
		`freezes[0].weekly.to: "8" is not HH:MM`,
		`p.yaml:6: freezes[1].name: "nights" is used twice`,
		`freezes[1]: give exactly one of weekly`,
		`errorBudget.slo.target: 99.9 is out of range`,
		`errorBudget.slo.sli: give good and total`,
		`errorBudget.thresholds[0].allow: "maybe" is not allowed (allowed: hotfix, none)`,
		`errorBudget.burnRate[0].short: 1h0m0s is not shorter than long 5m0s`,
		`errorBudget.noData: "shrug"`,
		`breakGlass.incidents.provider: "pagerduty" is not allowed (allowed: http, local)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors do not say %q:\n%s", want, err)
		}
	}
	if _, err := Parse("p.yaml", []byte("freezes:\n  - name: x\n    blocks: all\n    weekly: {from: '20:00', to: '08:00'}\n    colour: red\n")); err == nil || !strings.Contains(err.Error(), "p.yaml:5") || !strings.Contains(err.Error(), "unknown field") {
		t.Errorf("unknown field: %v", err)
	}
}

// TestBreakGlassRules: reason, who and incident.
func TestBreakGlassRules(t *testing.T) {
	p := mustParse(t, sample)
	for _, c := range []struct{ who, reason, incident, err string }{
		{"ann", "sev1 fix", "INC-1", ""},
		{"eve", "sev1 fix", "INC-1", "eve may not break glass"},
		{"ann", "", "INC-1", "written reason"},
		{"ann", "sev1 fix", "", "incident in progress"},
	} {
		err := p.MayBreakGlass(c.who, c.reason, c.incident)
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestIncidentProviders: provider local needs no url (the check fills the
// local environment's) and gets the local environment's field and open
// status; http needs a URL with {{id}}; a url given to local is refused.
func TestIncidentProviders(t *testing.T) {
	p := mustParse(t, sample+"  incidents: {provider: local}\n")
	in := p.Incident("INC-7")
	if in == nil || in.Provider != "local" || in.URL != "" || in.ID != "INC-7" || in.Field != "status" || !slices.Equal(in.Open, []string{"open"}) {
		t.Fatalf("Incident = %+v", in)
	}
	at, err := in.AtLocal("http://127.0.0.1:8234/")
	if err != nil || at.URL != "http://127.0.0.1:8234/api/incidents/{{id}}" {
		t.Errorf("AtLocal = %+v, %v", at, err)
	}
	if _, err := in.AtLocal(""); err == nil || !strings.Contains(err.Error(), "--local-env") {
		t.Errorf("AtLocal without a local environment: %v", err)
	}
	h := mustParse(t, sample+"  incidents: {provider: http, url: \"https://inc.example/{{id}}\"}\n").Incident("INC-7")
	if at, err := h.AtLocal("http://127.0.0.1:1"); err != nil || at.URL != "https://inc.example/{{id}}" {
		t.Errorf("an http provider's URL changed: %+v, %v", at, err)
	}
	for _, c := range []struct{ yaml, want string }{
		{"{provider: local, url: \"http://x/{{id}}\"}", "breakGlass.incidents.url: \"http://x/{{id}}\": provider local takes no url"},
		{"{provider: http}", "breakGlass.incidents.url: \"\": give an http(s) URL"},
		{"{provider: pagerduty}", "(allowed: http, local)"},
	} {
		_, err := Parse("p.yaml", []byte(sample+"  incidents: "+c.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.yaml, err, c.want)
		}
	}
}
