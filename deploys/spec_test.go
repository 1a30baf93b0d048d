package deploys

import (
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
)

// registry with a "local" provider offering every deploy capability.
func testRegistry() *activities.Registry {
	ok := func(map[string]any) (activities.Traffic, error) { return nil, nil }
	return activities.NewRegistry(activities.Provider{
		Name:    "local",
		Traffic: ok,
		Release: func(map[string]any) (activities.Release, error) { return nil, nil },
		Signals: func(map[string]any) (activities.Signals, error) { return nil, nil },
	})
}

const good = `service: web
traffic: {provider: local}
release: {provider: local}
analysis:
  provider: local
  interval: 1s
  metrics:
    - {name: errors, metric: error_rate, max: 0.05}
steps:
  - {weight: 10, pause: 5s}
  - {weight: 50, pause: 5s}
`

func TestShippedSpecsParse(t *testing.T) {
	for _, name := range Shipped() {
		if name == "lab-canary" || name == "ecs-canary" || name == "k8s-canary" {
			continue // other providers; checked where they are registered
		}
		if _, err := Load(name, testRegistry()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	s, err := Parse("good.yaml", []byte(good), testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if s.OnFailure != "rollback" || s.Artifacts.Keep != 3 || s.Environment != "local" {
		t.Fatalf("defaults: %+v", s)
	}
}

func TestBadSpecs(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // in the error: file:line, field, what is allowed
	}{
		{"malformed", "service: web\nsteps: [\n", []string{"bad.yaml:"}},
		{"not increasing", strings.Replace(good, "weight: 50", "weight: 10", 1), []string{"bad.yaml:11: steps[1].weight", "must increase"}},
		{"above 100", strings.Replace(good, "weight: 50", "weight: 150", 1), []string{"bad.yaml:11: steps[1].weight", "1..100"}},
		{"unknown provider", strings.Replace(good, "traffic: {provider: local}", "traffic: {provider: nginx}", 1), []string{"bad.yaml:2: traffic", `"nginx"`, "allowed: local"}},
		{"negative pause", strings.Replace(good, "pause: 5s}\n  - {weight: 50", "pause: -5s}\n  - {weight: 50", 1), []string{"bad.yaml:10: steps[0].pause", "negative"}},
		{"bad duration", strings.Replace(good, "interval: 1s", "interval: soon", 1), []string{"bad.yaml:6", `"soon" is not a duration`}},
		{"unknown field", good + "rollback: yes\n", []string{"bad.yaml:12: rollback", "unknown field"}},
		{"no metrics", strings.Replace(good, "    - {name: errors, metric: error_rate, max: 0.05}\n", "", 1), []string{"analysis.metrics", "at least one metric"}},
		{"bad onFailure", good + "onFailure: ignore\n", []string{"bad.yaml:12: onFailure", "allowed: rollback, pause"}},
		{"metric without threshold", strings.Replace(good, ", max: 0.05", "", 1), []string{"analysis.metrics[0]", "needs max"}},
		{"empty", "", []string{"bad.yaml:1", "empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml), testRegistry())
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
