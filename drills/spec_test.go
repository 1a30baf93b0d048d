package drills

import (
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
)

func testRegistry() *activities.Registry {
	return activities.NewRegistry(activities.Provider{
		Name:    "local",
		Traffic: func(map[string]any) (activities.Traffic, error) { return nil, nil },
		Signals: func(map[string]any) (activities.Signals, error) { return nil, nil },
		Faults:  func(map[string]any) (activities.Faults, error) { return nil, nil },
		Runner:  func(map[string]any) (activities.Runner, error) { return nil, nil },
	})
}

func TestRegionFailoverParses(t *testing.T) {
	s, err := Load("region-failover", testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if s.Mitigation.Mode != ModeAutomated || s.Targets.Detection != 30*time.Second || s.Targets.Engagement != time.Minute || s.Load != 2 {
		t.Fatalf("%+v", s)
	}
	if len(s.Recovery.Checks) == 0 || s.Schedule == nil {
		t.Fatal("recovery checks default to the SLO; the shipped drill has a calendar")
	}
}

func TestBadDrillSpecs(t *testing.T) {
	base, err := files.ReadFile("region-failover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	good := string(base)
	for _, tc := range []struct {
		name, from, to string
		want           []string
	}{
		{"unknown mode", "mode: automated", "mode: yolo", []string{"mitigation.mode", "allowed: automated, gameday"}},
		{"unknown provider", "faults: {provider: local}", "faults: {provider: chaos-monkey}", []string{"providers.faults.provider", `"chaos-monkey"`}},
		{"weights above 100", "weights: {east: 0, west: 100}", "weights: {east: 0, west: 120}", []string{"mitigation.steps[0].failover.weights.west", "0..100"}},
		{"negative hold", "holdFor: 2s", "holdFor: -2s", []string{"recovery.holdFor", "negative"}},
		{"check without threshold", "{name: west-up, metric: up, scope: {region: west}, min: 1}\ninject", "{name: west-up, metric: up, scope: {region: west}}\ninject", []string{"steadyState[2]", "needs max or min"}},
		{"bad calendar", `calendar: "first tuesday 10:00 America/New_York"`, `calendar: "someday 25:00 Mars/Base"`, []string{"schedule.calendar"}},
		{"step with two kinds", "    fault: {kind: region_down, params: {region: east}}", "    fault: {kind: region_down, params: {region: east}}\n    weights: {east: 0}", []string{"inject[0]", "exactly one of"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.from) {
				t.Fatalf("fixture lacks %q", tc.from)
			}
			CalendarCheck = func(s string) error {
				if strings.HasPrefix(s, "someday") {
					return errString("not a calendar")
				}
				return nil
			}
			defer func() { CalendarCheck = nil }()
			_, err := Parse("drills/bad.yaml", []byte(strings.Replace(good, tc.from, tc.to, 1)), testRegistry())
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), "drills/bad.yaml:") {
				t.Errorf("error %q does not name file:line", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// The spec's minRequests reaches the request checks that say something
// holds, not probes, and a check's own value wins.
func TestMinRequestsDefault(t *testing.T) {
	base, err := files.ReadFile("region-failover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse("x.yaml", []byte(string(base)+"minRequests: 20\n"), testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range append(append([]activities.Check{}, s.SteadyState...), s.Recovery.Checks...) {
		want := 0.0
		if c.Metric == activities.MetricErrorRate {
			want = 20
		}
		if c.MinRequests != want {
			t.Fatalf("%s (%s): minRequests %g, want %g", c.Name, c.Metric, c.MinRequests, want)
		}
	}
	if _, err := Parse("x.yaml", []byte(string(base)+"minRequests: -1\n"), testRegistry()); err == nil || !strings.Contains(err.Error(), "minRequests") {
		t.Fatalf("%v: want a negative minRequests refused", err)
	}
}
