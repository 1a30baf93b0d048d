package activities

import (
	"context"
	"testing"
)

type countedTraffic struct{}

func (countedTraffic) SetWeights(context.Context, Weights) error { return nil }
func (countedTraffic) Weights(context.Context) (Weights, error)  { return nil, nil }

func TestRegistryBuildsEachClientOnce(t *testing.T) {
	built := 0
	reg := NewRegistry(Provider{Name: "p", Traffic: func(cfg map[string]any) (Traffic, error) {
		built++
		return countedTraffic{}, nil
	}})
	a := Target{Provider: "p", Config: map[string]any{"zone": "Z1", "name": "web"}}
	same := Target{Provider: "p", Config: map[string]any{"name": "web", "zone": "Z1"}}
	other := Target{Provider: "p", Config: map[string]any{"zone": "Z2", "name": "web"}}
	for _, tg := range []Target{a, same, a, other, other} {
		if _, err := reg.Traffic(tg); err != nil {
			t.Fatal(err)
		}
	}
	if built != 2 {
		t.Fatalf("built %d clients for two distinct settings, want 2", built)
	}
	if _, err := reg.Traffic(Target{Provider: "nope"}); err == nil || !IsPermanent(err) {
		t.Fatalf("unknown provider: %v, want a permanent error", err)
	}
}
