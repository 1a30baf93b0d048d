package chaos_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/chaos"
)

// fakeTraffic records every SetWeights that reached it.
type fakeTraffic struct {
	mu   sync.Mutex
	w    activities.Weights
	sets []activities.Weights
}

func (f *fakeTraffic) SetWeights(_ context.Context, w activities.Weights) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range w {
		f.w[k] = v
	}
	f.sets = append(f.sets, w)
	return nil
}

func (f *fakeTraffic) Weights(context.Context) (activities.Weights, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := activities.Weights{}
	for k, v := range f.w {
		out[k] = v
	}
	return out, nil
}

func setup(t *testing.T) (*chaos.Chaos, *activities.Registry, *fakeTraffic) {
	t.Helper()
	ft := &fakeTraffic{w: activities.Weights{"v1": 100}}
	inner := activities.NewRegistry(activities.Provider{
		Name: "fake",
		Traffic: func(cfg map[string]any) (activities.Traffic, error) {
			var s struct {
				Level string `json:"level"`
			}
			if err := activities.DecodeConfig(cfg, &s); err != nil {
				return nil, err
			}
			return ft, nil
		},
	})
	c := chaos.New(inner)
	return c, activities.NewRegistry(c.Provider()), ft
}

func target(cfg map[string]any) activities.Target {
	base := map[string]any{"wrap": "fake", "config": map[string]any{"level": "version"}}
	for k, v := range cfg {
		base[k] = v
	}
	return activities.Target{Provider: chaos.Name, Config: base}
}

// outcomes runs n SetWeights calls and returns "ok" or the error kind of
// each.
func outcomes(t *testing.T, reg *activities.Registry, tg activities.Target, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		tr, err := reg.Traffic(tg) // a client per call, as the activities do
		if err != nil {
			t.Fatal(err)
		}
		err = tr.SetWeights(context.Background(), activities.Weights{"v2": i % 100})
		switch {
		case err == nil:
			out[i] = "ok"
		case errors.Is(err, chaos.ErrTimeout):
			out[i] = chaos.KindTimeout
		case errors.Is(err, chaos.ErrThrottled):
			out[i] = chaos.KindThrottle
		case errors.Is(err, chaos.ErrServer):
			out[i] = chaos.Kind5xx
		default:
			t.Fatalf("call %d: unexpected error %v", i, err)
		}
		if err != nil && activities.IsPermanent(err) {
			t.Fatalf("call %d: injected fault %v is permanent; it must be retryable", i, err)
		}
	}
	return out
}

func TestSeededAndDeterministic(t *testing.T) {
	cfg := map[string]any{"share": 0.3, "seed": 7, "delay": "0s"}
	_, reg1, _ := setup(t)
	_, reg2, _ := setup(t)
	a := outcomes(t, reg1, target(cfg), 200)
	b := outcomes(t, reg2, target(cfg), 200)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("same seed, different faults:\n%v\n%v", a, b)
	}
	_, reg3, _ := setup(t)
	cfg["seed"] = 8
	if c := outcomes(t, reg3, target(cfg), 200); strings.Join(a, ",") == strings.Join(c, ",") {
		t.Fatal("seeds 7 and 8 gave the same 200 outcomes")
	}
}

func TestShareAndKinds(t *testing.T) {
	c, reg, ft := setup(t)
	const n = 5000
	out := outcomes(t, reg, target(map[string]any{"share": 0.3, "seed": 1, "delay": "0s"}), n)
	count := map[string]int{}
	for _, o := range out {
		count[o]++
	}
	faults := n - count["ok"]
	if share := float64(faults) / n; share < 0.27 || share > 0.33 {
		t.Fatalf("fault share %.3f, want about 0.3 (%v)", share, count)
	}
	for _, k := range []string{chaos.KindTimeout, chaos.KindThrottle, chaos.Kind5xx} {
		if count[k] < faults/5 {
			t.Fatalf("kind %s injected %d times of %d faults: kinds are not mixed (%v)", k, count[k], faults, count)
		}
	}
	st := c.Stats()
	if st.Calls != n || st.Faults() != faults || st.Timeouts != count[chaos.KindTimeout] ||
		st.Throttles != count[chaos.KindThrottle] || st.Errors5xx != count[chaos.Kind5xx] {
		t.Fatalf("stats %+v, counted %v", st, count)
	}
	// Throttled and 5xx calls never reached the provider; timed-out ones did.
	if want := count["ok"] + count[chaos.KindTimeout]; len(ft.sets) != want {
		t.Fatalf("%d SetWeights reached the wrapped provider, want %d (ok + timeout)", len(ft.sets), want)
	}
}

func TestOnlyChosenKinds(t *testing.T) {
	_, reg, ft := setup(t)
	out := outcomes(t, reg, target(map[string]any{"share": 1, "seed": 3, "kinds": []any{"throttle"}}), 50)
	for i, o := range out {
		if o != chaos.KindThrottle {
			t.Fatalf("call %d: %s, want throttle only", i, o)
		}
	}
	if len(ft.sets) != 0 {
		t.Fatalf("throttled calls reached the provider: %v", ft.sets)
	}
}

func TestTimeoutAppliesThenHangs(t *testing.T) {
	_, reg, ft := setup(t)
	tr, err := reg.Traffic(target(map[string]any{"share": 1, "seed": 1, "kinds": []any{"timeout"}, "delay": "150ms"}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = tr.SetWeights(context.Background(), activities.Weights{"v2": 10})
	if !errors.Is(err, chaos.ErrTimeout) || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("err %v after %s, want ErrTimeout after the 150ms delay", err, time.Since(start))
	}
	if ft.w["v2"] != 10 || len(ft.sets) != 1 {
		t.Fatalf("weights %v after a timed-out call, want the change applied once (v2=10)", ft.w)
	}
	// A context deadline shorter than the delay ends the hang.
	tr, _ = reg.Traffic(target(map[string]any{"share": 1, "seed": 1, "kinds": []any{"timeout"}, "delay": "1h"}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = tr.SetWeights(ctx, activities.Weights{"v2": 20})
	if !errors.Is(err, chaos.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %s, want ErrTimeout and DeadlineExceeded at the context's deadline", err, time.Since(start))
	}
}

func TestZeroShareIsTransparent(t *testing.T) {
	_, reg, ft := setup(t)
	for i, o := range outcomes(t, reg, target(map[string]any{"share": 0, "seed": 1}), 100) {
		if o != "ok" {
			t.Fatalf("call %d failed with share 0: %s", i, o)
		}
	}
	if len(ft.sets) != 100 {
		t.Fatalf("%d calls reached the provider, want 100", len(ft.sets))
	}
}

func TestSettingsRejected(t *testing.T) {
	_, reg, _ := setup(t)
	cases := []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"share": 0.1}, "wrap: missing (allowed for traffic: fake)"},
		{map[string]any{"wrap": "chaos"}, "cannot wrap itself"},
		{map[string]any{"wrap": "nope"}, `"nope" cannot serve traffic (allowed: fake)`},
		{map[string]any{"wrap": "fake", "config": map[string]any{"levle": "x"}}, `unknown field "levle"`},
		{map[string]any{"wrap": "fake", "share": 1.5}, "share 1.5: allowed 0..1"},
		{map[string]any{"wrap": "fake", "kinds": []any{"meteor"}}, `kinds: "meteor": allowed timeout, throttle, 5xx`},
		{map[string]any{"wrap": "fake", "delay": "soon"}, `delay "soon": allowed a duration`},
		{map[string]any{"wrap": "fake", "shear": 0.1}, `unknown field "shear"`},
	}
	for _, c := range cases {
		err := reg.Validate(activities.CapTraffic, activities.Target{Provider: chaos.Name, Config: c.cfg})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("settings %v: error %v, want it to say %q", c.cfg, err, c.want)
		}
	}
	// A capability the wrapped provider lacks is refused too.
	err := reg.Validate(activities.CapRelease, activities.Target{Provider: chaos.Name, Config: map[string]any{"wrap": "fake"}})
	if err == nil || !strings.Contains(err.Error(), `"fake" cannot serve release`) {
		t.Errorf("release over a traffic-only provider: %v", err)
	}
}
