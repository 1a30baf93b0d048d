package local

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/localenv"
)

func startEnv(t *testing.T) *localenv.Env {
	t.Helper()
	e, err := localenv.Start(context.Background(), localenv.Options{RPS: -1, Bucket: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// hit sends n user requests through the environment's front proxy and
// counts the status codes.
func hit(t *testing.T, e *localenv.Env, n int) map[int]int {
	t.Helper()
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			resp, err := http.Get(e.FrontURL() + "/")
			if err != nil {
				t.Errorf("GET front: %v", err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return codes
}

func TestProviderDrivesEnvironment(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	p := Provider(e.URL())
	if p.Name != "local" || p.Database != nil {
		t.Fatalf("provider %q database=%v", p.Name, p.Database != nil)
	}
	rel, err := p.Release(nil)
	if err != nil {
		t.Fatal(err)
	}
	versions, err := p.Traffic(map[string]any{"level": "version"})
	if err != nil {
		t.Fatal(err)
	}
	regions, err := p.Traffic(map[string]any{"level": "region"})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := p.Signals(nil)
	if err != nil {
		t.Fatal(err)
	}

	// Release: a canary beside the stable version.
	for range 2 { // idempotent
		if err := rel.Deploy(ctx, "v2"); err != nil {
			t.Fatal(err)
		}
	}
	st, err := rel.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := activities.ReleaseState{Stable: "v1", Running: []string{"v1", "v2"}, Artifacts: []string{"v1", "v2"}}
	if !equalState(st, want) {
		t.Fatalf("state = %+v, want %+v", st, want)
	}

	// Traffic: set, read back; names left out keep their weight.
	if err := versions.SetWeights(ctx, activities.Weights{"v2": 100}); err != nil {
		t.Fatal(err)
	}
	if err := versions.SetWeights(ctx, activities.Weights{"v1": 0}); err != nil {
		t.Fatal(err)
	}
	w, err := versions.Weights(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 2 || w["v1"] != 0 || w["v2"] != 100 {
		t.Fatalf("version weights = %v, want v1=0 v2=100", w)
	}
	if err := regions.SetWeights(ctx, activities.Weights{"east": 0, "west": 100}); err != nil {
		t.Fatal(err)
	}
	if w, _ := regions.Weights(ctx); len(w) != 2 || w["east"] != 0 || w["west"] != 100 {
		t.Fatalf("region weights = %v, want east=0 west=100", w)
	}

	// Signals: what users got is what the provider reads.
	if codes := hit(t, e, 50); codes[200] != 50 {
		t.Fatalf("codes %v", codes)
	}
	before := time.Now().UnixMilli()
	s, err := sig.Sample(ctx, activities.Query{Metric: activities.MetricRequests, Scope: map[string]string{"region": "west", "version": "v2"}, Window: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Value != 10 || s.NoData || s.At < before {
		t.Fatalf("request_rate{west,v2} over 5s = %+v, want 10/s (50 requests)", s)
	}
	s, _ = sig.Sample(ctx, activities.Query{Metric: activities.MetricRequests, Scope: map[string]string{"version": "v1"}})
	if s.Value != 0 {
		t.Fatalf("request_rate{v1} = %+v, want 0", s)
	}
	s, _ = sig.Sample(ctx, activities.Query{Metric: activities.MetricErrorRate, Scope: map[string]string{"version": "v2"}})
	if s.Value != 0 || s.NoData {
		t.Fatalf("error_rate{v2} = %+v, want 0 with data", s)
	}
	s, _ = sig.Sample(ctx, activities.Query{Metric: activities.MetricErrorRate, Scope: map[string]string{"version": "v1"}})
	if !s.NoData {
		t.Fatalf("error_rate{v1} without traffic = %+v, want noData", s)
	}
	s, _ = sig.Sample(ctx, activities.Query{Metric: activities.MetricLatencyP99, Scope: map[string]string{"version": "v2"}})
	if s.Value < 0.002 || s.Value > 1 {
		t.Fatalf("latency_p99{v2} = %+v, want a few ms", s)
	}

	// Promote, stop the old one, prune.
	if err := rel.Promote(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	if err := rel.Stop(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	// v1 is what v2 replaced: the rollback target stays even with keep 1.
	removed, err := rel.Prune(ctx, "v2", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 {
		t.Fatalf("pruned %v, want nothing (v2 current, v1 its rollback target)", removed)
	}
	if err := rel.Deploy(ctx, "v3"); err != nil {
		t.Fatal(err)
	}
	if err := rel.Stop(ctx, "v3"); err != nil { // rolled back
		t.Fatal(err)
	}
	removed, err = rel.Prune(ctx, "v2", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{"v3"}) {
		t.Fatalf("pruned %v, want the failed canary [v3]", removed)
	}
	st, _ = rel.State(ctx)
	if want := (activities.ReleaseState{Stable: "v2", Running: []string{"v2"}, Artifacts: []string{"v1", "v2"}}); !equalState(st, want) {
		t.Fatalf("state = %+v, want %+v", st, want)
	}
}

func TestProviderFaultsAndRunner(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	p := Provider(e.URL())
	fl, _ := p.Faults(nil)
	run, _ := p.Runner(nil)
	sig, _ := p.Signals(nil)
	down := activities.Fault{Kind: "region_down", Params: map[string]string{"region": "east"}, Owner: "drill-1"}

	h1, err := fl.Inject(ctx, down)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := fl.Inject(ctx, down)
	if err != nil || h2 != h1 {
		t.Fatalf("second inject = %q, %v; want %q", h2, err, h1)
	}
	up, err := sig.Sample(ctx, activities.Query{Metric: activities.MetricUp, Scope: map[string]string{"region": "east"}})
	if err != nil || up.Value != 0 {
		t.Fatalf("up{east} = %+v, %v; want 0", up, err)
	}
	if up, _ := sig.Sample(ctx, activities.Query{Metric: activities.MetricUp, Scope: map[string]string{"region": "west"}}); up.Value != 1 {
		t.Fatalf("up{west} = %+v, want 1", up)
	}
	if _, err := fl.Stop(ctx, down, h1); err != nil {
		t.Fatal(err)
	}
	if _, err := fl.Stop(ctx, down, h1); err != nil {
		t.Fatalf("stopping a stopped fault: %v", err)
	}
	if up, _ := sig.Sample(ctx, activities.Query{Metric: activities.MetricUp, Scope: map[string]string{"region": "east"}}); up.Value != 1 {
		t.Fatalf("up{east} after stop = %+v, want 1", up)
	}

	// Without a handle, the fault is found by kind and params.
	dep := activities.Fault{Kind: "dependency_down", Params: map[string]string{"dependency": "recs"}, Owner: "drill-1"}
	if _, err := fl.Inject(ctx, dep); err != nil {
		t.Fatal(err)
	}
	if codes := hit(t, e, 10); codes[500] != 10 {
		t.Fatalf("dependency down: %v", codes)
	}
	out, err := run.Run(ctx, activities.Action{Name: "shed", Params: map[string]string{"dependency": "recs"}})
	if err != nil || !strings.Contains(out.Detail, "shedding recs") {
		t.Fatalf("shed = %+v, %v", out, err)
	}
	if codes := hit(t, e, 10); codes[200] != 10 {
		t.Fatalf("shed: %v", codes)
	}
	if _, err := fl.Stop(ctx, dep, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Run(ctx, activities.Action{Name: "unshed", Params: map[string]string{"dependency": "recs"}}); err != nil {
		t.Fatal(err)
	}
	if codes := hit(t, e, 10); codes[200] != 10 {
		t.Fatalf("restored: %v", codes)
	}
	// A handle the environment does not know (it restarted) is fine.
	if _, err := fl.Stop(ctx, dep, "f999"); err != nil {
		t.Fatalf("stop unknown handle: %v", err)
	}

	resp, err := http.Get(e.URL() + "/api/faults")
	if err != nil {
		t.Fatal(err)
	}
	var truth []localenv.FaultRecord
	json.NewDecoder(resp.Body).Decode(&truth)
	resp.Body.Close()
	if len(truth) != 2 || truth[0].Kind != "region_down" || truth[1].Kind != "dependency_down" {
		t.Fatalf("ground truth = %+v", truth)
	}
	for _, f := range truth {
		if f.Active || f.StartedAt == 0 || f.EndedAt < f.StartedAt {
			t.Fatalf("fault not ended with times: %+v", f)
		}
	}
}

func TestProviderErrors(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	p := Provider(e.URL())

	// Config is checked strictly, without I/O.
	if _, err := p.Traffic(map[string]any{"level": "zone"}); err == nil || !strings.Contains(err.Error(), `level "zone": allowed region, version`) {
		t.Fatalf("bad level: %v", err)
	}
	if _, err := p.Signals(map[string]any{"url": "x"}); err == nil || !strings.Contains(err.Error(), `unknown field "url"`) {
		t.Fatalf("unknown field: %v", err)
	}

	// 4xx: permanent, with the environment's message.
	tr, _ := p.Traffic(nil)
	err := tr.SetWeights(ctx, activities.Weights{"v9": 10})
	if !activities.IsPermanent(err) || !strings.Contains(err.Error(), "weights.v9: unknown version (allowed: v1)") {
		t.Fatalf("unknown version: %v (permanent %v)", err, activities.IsPermanent(err))
	}
	rel, _ := p.Release(nil)
	if err := rel.Stop(ctx, "v1"); !activities.IsPermanent(err) || !strings.Contains(err.Error(), "stable version") {
		t.Fatalf("stop stable: %v", err)
	}
	fl, _ := p.Faults(nil)
	if _, err := fl.Inject(ctx, activities.Fault{Kind: "error_rate", Params: map[string]string{"rate": "1.5"}}); !activities.IsPermanent(err) || !strings.Contains(err.Error(), `params.rate "1.5"`) {
		t.Fatalf("bad rate: %v", err)
	}
	sig, _ := p.Signals(nil)
	if _, err := sig.Sample(ctx, activities.Query{Metric: "cpu"}); !activities.IsPermanent(err) {
		t.Fatalf("bad metric: %v", err)
	}
	if _, err := sig.Sample(ctx, activities.Query{Metric: "up", Scope: map[string]string{"zone": "a"}}); !activities.IsPermanent(err) || !strings.Contains(err.Error(), `scope key "zone"`) {
		t.Fatalf("bad scope: %v", err)
	}

	// No URL: constructors validate, calls fail permanently.
	none := Provider("")
	if _, err := none.Traffic(map[string]any{"bogus": 1}); err == nil {
		t.Fatal("bad config accepted without URL")
	}
	tr0, err := none.Traffic(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr0.Weights(ctx); !errors.Is(err, ErrNoURL) || !activities.IsPermanent(err) ||
		!strings.Contains(err.Error(), "local environment URL not set (run under drillship dev/demo or pass --local-env)") {
		t.Fatalf("no URL: %v", err)
	}

	// Transport errors are retryable.
	url := e.URL()
	e.Close()
	tr2, _ := Provider(url).Traffic(nil)
	if _, err := tr2.Weights(ctx); err == nil || activities.IsPermanent(err) {
		t.Fatalf("closed environment: %v (permanent %v), want a retryable error", err, activities.IsPermanent(err))
	}
}

func TestServerErrorIsRetryable(t *testing.T) {
	// A 5xx from the control API stays retryable.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"busy"}`))
	})}
	ln, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	rel, _ := Provider("http://" + ln.Addr().String()).Release(nil)
	_, err = rel.State(context.Background())
	if err == nil || activities.IsPermanent(err) || !strings.Contains(err.Error(), "503 Service Unavailable: busy") {
		t.Fatalf("5xx: %v (permanent %v)", err, activities.IsPermanent(err))
	}
}

func equalState(a, b activities.ReleaseState) bool {
	return a.Stable == b.Stable && slices.Equal(a.Running, b.Running) && slices.Equal(a.Artifacts, b.Artifacts)
}

func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
