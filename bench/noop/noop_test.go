package noop

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
)

func TestTrafficReadsBackPerScope(t *testing.T) {
	s := NewStore()
	p := s.Provider()
	ctx := context.Background()
	a, err := p.Traffic(map[string]any{"scope": "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Traffic(map[string]any{"scope": "b"})
	if err := a.SetWeights(ctx, activities.Weights{"v1": 90, "v2": 10}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetWeights(ctx, activities.Weights{"v2": 50}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetWeights(ctx, activities.Weights{"v2": 30}); err != nil {
		t.Fatal(err)
	}
	got, _ := a.Weights(ctx)
	if got["v1"] != 90 || got["v2"] != 30 || len(got) != 2 {
		t.Fatalf("scope a weights %v, want v1=90 v2=30 (unnamed backends keep their weight)", got)
	}
	if got := s.Weights("b"); got["v2"] != 50 || len(got) != 1 {
		t.Fatalf("scope b weights %v, want only v2=50", got)
	}
	if err := a.SetWeights(ctx, activities.Weights{"v2": 101}); !activities.IsPermanent(err) {
		t.Fatalf("weight 101: err %v, want a permanent error", err)
	}
	if c := s.Calls(); c["SetWeights"] != 4 || c["Weights"] != 1 {
		t.Fatalf("calls %v", c)
	}
}

func TestReleaseLifecycle(t *testing.T) {
	s := NewStore()
	ctx := context.Background()
	r, err := s.Provider().Release(map[string]any{"scope": "x"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := r.State(ctx)
	if st.Stable != "v1" || !slices.Equal(st.Running, []string{"v1"}) {
		t.Fatalf("initial state %+v, want stable v1 running [v1]", st)
	}
	if err := r.Promote(ctx, "v2"); err == nil {
		t.Fatal("promoting a version that is not running must fail")
	}
	for _, v := range []string{"v2", "v3"} {
		if err := r.Deploy(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Promote(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx, "v2"); !activities.IsPermanent(err) {
		t.Fatalf("stopping the stable version: err %v, want permanent", err)
	}
	for _, v := range []string{"v1", "v3"} {
		if err := r.Stop(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := r.Prune(ctx, "v2", 1)
	if err != nil {
		t.Fatal(err)
	}
	st, _ = s.Release("x")
	if !slices.Equal(removed, []string{"v1", "v3"}) || !slices.Equal(st.Artifacts, []string{"v2"}) ||
		st.Stable != "v2" || !slices.Equal(st.Running, []string{"v2"}) {
		t.Fatalf("after prune: removed %v, state %+v; want removed [v1 v3], only v2 left", removed, st)
	}
	if _, ok := s.Release("other"); ok {
		t.Fatal("an unused scope must not exist")
	}
}

func TestSignalsAndConfig(t *testing.T) {
	p := Provider()
	g, err := p.Signals(map[string]any{"values": map[string]any{"error_rate": 0.25}})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := g.Sample(context.Background(), activities.Query{Metric: "error_rate"})
	z, _ := g.Sample(context.Background(), activities.Query{Metric: "latency_p99"})
	if v.Value != 0.25 || z.Value != 0 || v.At == 0 {
		t.Fatalf("samples %+v %+v, want 0.25 and 0 with a time", v, z)
	}
	_, err = p.Traffic(map[string]any{"scpoe": "typo"})
	if err == nil || !strings.Contains(err.Error(), "scpoe") {
		t.Fatalf("typo in config: err %v, want one naming the field", err)
	}
	if p.Faults != nil || p.Database != nil || p.Runner != nil {
		t.Fatal("the bench provider offers traffic, release and signals only")
	}
}
