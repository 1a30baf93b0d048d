// Package noop is the `bench` provider: Traffic, Release and Signals that
// touch nothing outside the worker's memory. The benchmarks run deploys on it
// so that what they time is orchestration (Temporal, the workflow, the
// activity plumbing), not a load balancer or a metrics store.
//
// It still behaves like a provider: weights read back what was set, a
// deployed version is running until stopped, a promoted one is stable. State
// is kept per scope (a config field), so that thousands of concurrent deploys
// on one worker do not read each other's weights.
package noop

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/drillship/drillship/activities"
)

// Name is the provider name specs use.
const Name = "bench"

// DefaultStable is the stable version of a scope nobody has deployed to yet.
const DefaultStable = "v1"

// Config is the settings of every capability.
type Config struct {
	// Scope separates state: deploys with different scopes never see each
	// other's weights or versions. Empty is a scope too.
	Scope string `json:"scope,omitempty"`
	// Stable is the stable version a new scope starts with (default v1).
	Stable string `json:"stable,omitempty"`
}

// SignalsConfig is the settings of Signals.
type SignalsConfig struct {
	// Values answer Sample by metric name; metrics not named answer 0, which
	// passes any max threshold.
	Values map[string]float64 `json:"values,omitempty"`
}

// Store holds the state of every scope. Provider uses one per call of
// Provider; tests build their own to read it back.
type Store struct {
	mu      sync.Mutex
	weights map[string]activities.Weights
	release map[string]*activities.ReleaseState
	calls   map[string]int
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{weights: map[string]activities.Weights{}, release: map[string]*activities.ReleaseState{}, calls: map[string]int{}}
}

// Provider returns the bench provider over a fresh store.
func Provider() activities.Provider { return NewStore().Provider() }

// Provider returns the bench provider over s.
func (s *Store) Provider() activities.Provider {
	return activities.Provider{
		Name: Name,
		Traffic: func(cfg map[string]any) (activities.Traffic, error) {
			c, err := decode(cfg)
			if err != nil {
				return nil, err
			}
			return traffic{s: s, scope: c.Scope}, nil
		},
		Release: func(cfg map[string]any) (activities.Release, error) {
			c, err := decode(cfg)
			if err != nil {
				return nil, err
			}
			return release{s: s, scope: c.Scope, stable: c.Stable}, nil
		},
		Signals: func(cfg map[string]any) (activities.Signals, error) {
			var c SignalsConfig
			if err := activities.DecodeConfig(cfg, &c); err != nil {
				return nil, err
			}
			return signals{s: s, values: c.Values}, nil
		},
	}
}

func decode(cfg map[string]any) (Config, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return c, err
	}
	if c.Stable == "" {
		c.Stable = DefaultStable
	}
	return c, nil
}

// Weights returns a copy of a scope's weights.
func (s *Store) Weights(scope string) activities.Weights {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := activities.Weights{}
	for k, v := range s.weights[scope] {
		out[k] = v
	}
	return out
}

// Release returns a copy of a scope's release state; ok is false for a scope
// nobody has used.
func (s *Store) Release(scope string) (activities.ReleaseState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.release[scope]
	if !ok {
		return activities.ReleaseState{}, false
	}
	return copyState(*r), true
}

// Calls returns how many times each operation ran ("SetWeights", "Sample", ...).
func (s *Store) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

func copyState(r activities.ReleaseState) activities.ReleaseState {
	r.Running = slices.Clone(r.Running)
	r.Artifacts = slices.Clone(r.Artifacts)
	return r
}

type traffic struct {
	s     *Store
	scope string
}

func (t traffic) SetWeights(_ context.Context, w activities.Weights) error {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.s.calls["SetWeights"]++
	cur := t.s.weights[t.scope]
	if cur == nil {
		cur = activities.Weights{}
		t.s.weights[t.scope] = cur
	}
	for k, v := range w {
		if v < 0 || v > 100 {
			return activities.Permanent(fmt.Errorf("weight of %q: %d is outside 0..100", k, v))
		}
		cur[k] = v
	}
	return nil
}

func (t traffic) Weights(context.Context) (activities.Weights, error) {
	t.s.mu.Lock()
	t.s.calls["Weights"]++
	t.s.mu.Unlock()
	return t.s.Weights(t.scope), nil
}

type release struct {
	s      *Store
	scope  string
	stable string
}

// state returns the scope's state, creating it; the caller holds s.mu.
func (r release) state() *activities.ReleaseState {
	st, ok := r.s.release[r.scope]
	if !ok {
		st = &activities.ReleaseState{Stable: r.stable, Running: []string{r.stable}, Artifacts: []string{r.stable}}
		r.s.release[r.scope] = st
	}
	return st
}

func (r release) State(context.Context) (activities.ReleaseState, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.s.calls["State"]++
	return copyState(*r.state()), nil
}

func (r release) Deploy(_ context.Context, version string) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.s.calls["Deploy"]++
	st := r.state()
	if !slices.Contains(st.Running, version) {
		st.Running = append(st.Running, version)
	}
	if !slices.Contains(st.Artifacts, version) {
		st.Artifacts = append(st.Artifacts, version)
	}
	return nil
}

func (r release) Promote(_ context.Context, version string) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.s.calls["Promote"]++
	st := r.state()
	if !slices.Contains(st.Running, version) {
		return fmt.Errorf("promote %s: not running (running: %v)", version, st.Running)
	}
	st.Stable = version
	return nil
}

func (r release) Stop(_ context.Context, version string) error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.s.calls["Stop"]++
	st := r.state()
	if version == st.Stable {
		return activities.Permanent(fmt.Errorf("stop %s: it is the stable version", version))
	}
	st.Running = slices.DeleteFunc(st.Running, func(v string) bool { return v == version })
	return nil
}

// Prune keeps the newest keep, the stable and the current one: the bench
// measures the engine, not the retention rule (package retention).
func (r release) Prune(_ context.Context, current string, keep int) ([]string, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.s.calls["Prune"]++
	st := r.state()
	var removed, kept []string
	excess := len(st.Artifacts) - keep
	for _, a := range st.Artifacts {
		if excess > 0 && a != st.Stable && a != current && !slices.Contains(st.Running, a) {
			removed = append(removed, a)
			excess--
			continue
		}
		kept = append(kept, a)
	}
	st.Artifacts = kept
	return removed, nil
}

type signals struct {
	s      *Store
	values map[string]float64
}

func (g signals) Sample(_ context.Context, q activities.Query) (activities.Sample, error) {
	g.s.mu.Lock()
	g.s.calls["Sample"]++
	g.s.mu.Unlock()
	return activities.Sample{Value: g.values[q.Metric], At: time.Now().UnixMilli()}, nil
}
