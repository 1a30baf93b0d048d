package harness

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/localenv"
)

// Invariants polls the local environment's state while a test runs and
// keeps every moment that breaks a promise that must hold at all times:
// version weights and region weights sum to 100, and a version that is not
// running takes no traffic (the canary is never stopped while it takes
// traffic).
type Invariants struct {
	url  string
	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	polls      int
	violations []string
	seen       map[string]bool
}

// WatchInvariants starts polling env every 20 ms until Stop.
func WatchInvariants(t testing.TB, env *devenv.Env) *Invariants {
	t.Helper()
	return WatchInvariantsAt(t, env.LocalURL())
}

// WatchInvariantsAt polls the local environment at url.
func WatchInvariantsAt(t testing.TB, url string) *Invariants {
	inv := &Invariants{url: url, stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]bool{}}
	go inv.run()
	t.Cleanup(func() { inv.Stop() })
	return inv
}

func (inv *Invariants) run() {
	defer close(inv.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-inv.stop:
			return
		case <-tick.C:
		}
		var st localenv.State
		if err := TryGetJSON(inv.url+"/api/state", &st); err != nil {
			continue // the environment closing at the end of a test
		}
		inv.check(st)
	}
}

// Broken lists what is wrong with one state, empty when nothing is.
func Broken(st localenv.State) []string {
	var out []string
	if s := sum(st.VersionWeights); len(st.VersionWeights) > 0 && s != 100 {
		out = append(out, fmt.Sprintf("version weights %v sum to %d", st.VersionWeights, s))
	}
	if s := sum(st.RegionWeights); len(st.RegionWeights) > 0 && s != 100 {
		out = append(out, fmt.Sprintf("region weights %v sum to %d", st.RegionWeights, s))
	}
	for v, w := range st.VersionWeights {
		if w > 0 && !slices.Contains(st.Running, v) {
			out = append(out, fmt.Sprintf("%s takes %d%% of the traffic but is not running (running %v)", v, w, st.Running))
		}
	}
	sort.Strings(out)
	return out
}

func (inv *Invariants) check(st localenv.State) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.polls++
	for _, b := range Broken(st) {
		if !inv.seen[b] {
			inv.seen[b] = true
			inv.violations = append(inv.violations, b)
		}
	}
}

// Stop ends the polling and returns every distinct violation seen and the
// number of states read.
func (inv *Invariants) Stop() (violations []string, polls int) {
	select {
	case <-inv.stop:
	default:
		close(inv.stop)
	}
	<-inv.done
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return slices.Clone(inv.violations), inv.polls
}

// Assert stops the polling and fails the test on any violation.
func (inv *Invariants) Assert(t testing.TB) {
	t.Helper()
	v, polls := inv.Stop()
	if polls < 2 {
		t.Errorf("the environment was read only %d times: the invariants were not watched", polls)
	}
	for _, s := range v {
		t.Errorf("invariant broken during the run: %s", s)
	}
}

func sum(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

// Step is the part of a deploy's step record the evidence rule is checked
// on. It is read through JSON so that the same test reads records of older
// code (which lack some fields: they read as zero).
type Step struct {
	Step         int    `json:"step"`
	Kind         string `json:"kind"`
	Weight       int    `json:"weight"`
	Verdict      string `json:"verdict"`
	StartedAt    int64  `json:"startedAt"`
	EndedAt      int64  `json:"endedAt"`
	Samples      int    `json:"samples"`
	Conclusive   *int   `json:"conclusive"` // nil: a record from before the field (count Samples)
	UnobservedMs int64  `json:"unobservedMs"`
	Gaps         []struct {
		From, To int64
		Attempt  int
	} `json:"gaps"`
	Attempts int `json:"attempts"`
}

// Steps reads step records (a DeployResult's Steps) as Step values.
func Steps(t testing.TB, steps any) []Step {
	t.Helper()
	b, err := json.Marshal(steps)
	if err != nil {
		t.Fatal(err)
	}
	var out []Step
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Unobserved sums the unobserved time of all steps.
func Unobserved(steps []Step) (ms int64) {
	for _, s := range steps {
		ms += s.UnobservedMs
	}
	return ms
}

// BlindPasses lists the passed windows that did not rest on evidence: a
// pass needs at least ceil(window/interval/2) conclusive samples, and the
// time actually watched (the step's span less its unobserved time) must
// cover the window: time during which no worker watched is not evidence.
func BlindPasses(spec deploys.Spec, steps []Step) []string {
	iv := spec.Analysis.Interval.D()
	if iv <= 0 {
		iv = 5 * time.Second
	}
	var out []string
	for _, s := range steps {
		if s.Verdict != "pass" || s.Kind == "held" {
			continue
		}
		window, ok := windowOf(spec, s)
		if !ok {
			continue
		}
		need := int(math.Ceil(float64(window) / float64(iv) / 2))
		watched := time.Duration(s.EndedAt-s.StartedAt-s.UnobservedMs) * time.Millisecond
		conclusive, what := s.Samples, "samples (conclusive ones not recorded)"
		if s.Conclusive != nil {
			conclusive, what = *s.Conclusive, fmt.Sprintf("conclusive samples (%d taken)", s.Samples)
		}
		switch {
		case conclusive < need:
			out = append(out, fmt.Sprintf("%s at %d%% passed on %d %s, need %d for a %s window",
				kindOf(s), s.Weight, conclusive, what, need, window))
		case watched < window-100*time.Millisecond:
			out = append(out, fmt.Sprintf("%s at %d%% passed having watched %s of a %s window (%dms unobserved)",
				kindOf(s), s.Weight, watched, window, s.UnobservedMs))
		}
	}
	return out
}

func kindOf(s Step) string {
	if s.Kind != "" {
		return s.Kind
	}
	return "window"
}

// windowOf is the watched duration a step's record must cover.
func windowOf(spec deploys.Spec, s Step) (time.Duration, bool) {
	if s.Kind == "bake" || (s.Kind == "" && s.Weight == 100) {
		return spec.Bake.D(), spec.Bake.D() > 0
	}
	for _, st := range spec.Steps {
		if st.Weight == s.Weight {
			return st.Pause.D(), st.Pause.D() > 0
		}
	}
	return 0, false
}
