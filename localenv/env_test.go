package localenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func start(t *testing.T, o Options) *Env {
	t.Helper()
	if o.Bucket == 0 {
		o.Bucket = 50 * time.Millisecond
	}
	if o.RPS == 0 {
		o.RPS = -1 // tests drive their own requests unless they ask for load
	}
	e, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// call does one control API request and decodes the answer into out. It
// returns the status code.
func call(t *testing.T, e *Env, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func mustCall(t *testing.T, e *Env, method, path string, body, out any) {
	t.Helper()
	var raw json.RawMessage
	if code := call(t, e, method, path, body, &raw); code != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", method, path, code, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

func sli(t *testing.T, e *Env, query string) SLI {
	t.Helper()
	var s SLI
	mustCall(t, e, "GET", "/api/sli?"+query, nil, &s)
	return s
}

// hit sends n user requests through the front proxy, 8 at a time, and
// returns how many answers had each status and each body.
func hit(t *testing.T, e *Env, n int) (codes map[int]int, bodies map[string]int) {
	t.Helper()
	codes, bodies = map[int]int{}, map[string]int{}
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
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			if resp.StatusCode == 200 {
				bodies[strings.TrimSpace(string(b))]++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return codes, bodies
}

func TestWeightsRouteAllTrafficToOneBackend(t *testing.T) {
	e := start(t, Options{})
	mustCall(t, e, "POST", "/api/versions/v2/deploy", nil, nil)

	var got map[string]int
	mustCall(t, e, "PUT", "/api/weights/versions", map[string]int{"v1": 0, "v2": 100}, &got)
	if want := map[string]int{"v1": 0, "v2": 100}; !mapsEqual(got, want) {
		t.Fatalf("version weights answered %v, want %v", got, want)
	}
	got = nil
	mustCall(t, e, "PUT", "/api/weights/regions", map[string]int{"east": 100, "west": 0}, &got)
	if want := map[string]int{"east": 100, "west": 0}; !mapsEqual(got, want) {
		t.Fatalf("region weights answered %v, want %v", got, want)
	}

	codes, bodies := hit(t, e, 120)
	if codes[200] != 120 {
		t.Fatalf("status codes %v, want 120 x 200", codes)
	}
	if want := "service=web region=east version=v2 recs=ok"; bodies[want] != 120 {
		t.Fatalf("bodies %v, want all %q", bodies, want)
	}
	for _, c := range []struct {
		q    string
		want uint64
	}{
		{"region=east&version=v2", 120},
		{"region=east&version=v1", 0},
		{"region=west", 0},
		{"version=v1", 0},
		{"", 120},
	} {
		s := sli(t, e, "metric=request_rate&window=10s&"+c.q)
		if s.Count != c.want {
			t.Errorf("request count {%s} = %d, want %d", c.q, s.Count, c.want)
		}
		if math.Abs(s.Value-float64(c.want)/10) > 1e-9 {
			t.Errorf("request_rate {%s} = %v, want %v", c.q, s.Value, float64(c.want)/10)
		}
	}

	// Back to the stable version in the other region.
	mustCall(t, e, "PUT", "/api/weights/versions", map[string]int{"v1": 100, "v2": 0}, nil)
	mustCall(t, e, "PUT", "/api/weights/regions", map[string]int{"east": 0, "west": 100}, nil)
	_, bodies = hit(t, e, 40)
	if want := "service=web region=west version=v1 recs=ok"; bodies[want] != 40 {
		t.Fatalf("bodies %v, want all %q", bodies, want)
	}
	if s := sli(t, e, "metric=request_rate&region=west&version=v1"); s.Count != 40 {
		t.Fatalf("west/v1 count = %d, want 40", s.Count)
	}
}

func TestBadVersionErrorRate(t *testing.T) {
	e := start(t, Options{})
	var f FaultRecord
	// Set up before the version runs, as a bad canary would be.
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: "bad_version", Params: map[string]string{"version": "v2"}}, &f)
	if f.Params["rate"] != "0.1" || !f.Active || f.ID == "" {
		t.Fatalf("fault = %+v, want active with default rate 0.1", f)
	}
	mustCall(t, e, "POST", "/api/versions/v2/deploy", nil, nil)
	mustCall(t, e, "PUT", "/api/weights/versions", map[string]int{"v1": 50, "v2": 50}, nil)

	codes, _ := hit(t, e, 2000)
	v2 := sli(t, e, "metric=error_rate&version=v2")
	v1 := sli(t, e, "metric=error_rate&version=v1")
	t.Logf("codes %v; v2 %+v; v1 %+v", codes, v2, v1)
	if v2.Count < 800 || v1.Count < 800 {
		t.Fatalf("counts v1=%d v2=%d, want ~1000 each", v1.Count, v2.Count)
	}
	if v2.Value < 0.06 || v2.Value > 0.14 {
		t.Errorf("v2 error rate = %.3f, want ~0.1", v2.Value)
	}
	if v1.Value != 0 {
		t.Errorf("v1 (stable) error rate = %v, want 0", v1.Value)
	}
	if uint64(codes[500]) != uint64(math.Round(v2.Value*float64(v2.Count))) {
		t.Errorf("users saw %d x 500, metrics say %.0f", codes[500], v2.Value*float64(v2.Count))
	}
}

func TestRegionDown(t *testing.T) {
	e := start(t, Options{})
	if s := sli(t, e, "metric=up&region=east"); s.Value != 1 || s.Count != 1 {
		t.Fatalf("up{east} before = %+v, want 1 of 1", s)
	}
	before := time.Now().UnixMilli()
	var f FaultRecord
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: "region_down", Params: map[string]string{"region": "east"}}, &f)
	after := time.Now().UnixMilli()
	if f.StartedAt < before || f.StartedAt > after {
		t.Fatalf("startedAt %d not within [%d, %d]", f.StartedAt, before, after)
	}
	// Injecting the same fault again is the same fault.
	var again FaultRecord
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: "region_down", Params: map[string]string{"region": "east"}}, &again)
	if again.ID != f.ID || again.StartedAt != f.StartedAt {
		t.Fatalf("second inject = %+v, want the same fault as %+v", again, f)
	}

	up := sli(t, e, "metric=up&region=east")
	if up.Value != 0 || up.At < f.StartedAt || up.At-f.StartedAt > healthInterval.Milliseconds() {
		t.Fatalf("up{east} = %+v, want 0 within %s of %d", up, healthInterval, f.StartedAt)
	}
	if s := sli(t, e, "metric=up&region=west"); s.Value != 1 {
		t.Fatalf("up{west} = %+v, want 1", s)
	}

	time.Sleep(100 * time.Millisecond) // leave the pre-fault buckets behind
	t0 := time.Now()
	codes, bodies := hit(t, e, 200)
	took := time.Since(t0)
	east := sli(t, e, "metric=error_rate&region=east&window=2s")
	west := sli(t, e, "metric=error_rate&region=west&window=2s")
	t.Logf("codes %v in %s; east %+v; west %+v", codes, took, east, west)
	if east.Count < 60 || east.Value != 1 {
		t.Errorf("east error rate = %v over %d, want 1", east.Value, east.Count)
	}
	if west.Count < 60 || west.Value != 0 {
		t.Errorf("west error rate = %v over %d, want 0", west.Value, west.Count)
	}
	if codes[502] != int(east.Count) || codes[200] != int(west.Count) {
		t.Errorf("users saw %v, want %d x 502 and %d x 200", codes, east.Count, west.Count)
	}
	for b := range bodies {
		if !strings.Contains(b, "region=west") {
			t.Errorf("200 from %q during east outage", b)
		}
	}
	// 200 requests 8 at a time: failing ones must not hang on a dial.
	if took > 3*time.Second {
		t.Errorf("200 requests took %s: dead region is slow to fail", took)
	}

	// The proxy's health check sees it too.
	deadline := time.Now().Add(2 * healthInterval)
	for {
		var st State
		mustCall(t, e, "GET", "/api/state", nil, &st)
		east := st.Instances[slices.IndexFunc(st.Instances, func(i InstanceState) bool { return i.Region == "east" })]
		if !east.Healthy && !east.Serving {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("east instance still %+v after %s", east, 2*healthInterval)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// With all users sent to the dead region, each one fails fast.
	mustCall(t, e, "PUT", "/api/weights/regions", map[string]int{"east": 100, "west": 0}, nil)
	for range 5 {
		t0 := time.Now()
		resp, err := http.Get(e.FrontURL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if d := time.Since(t0); resp.StatusCode != http.StatusBadGateway || d > 100*time.Millisecond {
			t.Fatalf("request to dead region: %d after %s, want 502 within 100ms", resp.StatusCode, d)
		}
	}

	var ended FaultRecord
	mustCall(t, e, "DELETE", "/api/faults/"+f.ID, nil, &ended)
	if ended.EndedAt < f.StartedAt || ended.Active {
		t.Fatalf("ended = %+v", ended)
	}
	if s := sli(t, e, "metric=up&region=east"); s.Value != 1 {
		t.Fatalf("up{east} after recovery = %+v", s)
	}
	if codes, _ := hit(t, e, 20); codes[200] != 20 {
		t.Fatalf("after recovery codes %v, want 20 x 200", codes)
	}
	var all []FaultRecord
	mustCall(t, e, "GET", "/api/faults", nil, &all)
	if len(all) != 1 || all[0].StartedAt != f.StartedAt || all[0].EndedAt != ended.EndedAt || all[0].Active {
		t.Fatalf("ground truth %+v, want one ended fault %d..%d", all, f.StartedAt, ended.EndedAt)
	}
	var again2 FaultRecord
	mustCall(t, e, "DELETE", "/api/faults/"+f.ID, nil, &again2)
	if again2.EndedAt != ended.EndedAt {
		t.Fatalf("second stop moved endedAt %d -> %d", ended.EndedAt, again2.EndedAt)
	}
}

func TestLatencyDependencyAndShed(t *testing.T) {
	e := start(t, Options{})
	mustCall(t, e, "PUT", "/api/weights/regions", map[string]int{"east": 100, "west": 0}, nil)
	var lat FaultRecord
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: "latency", Params: map[string]string{"ms": "40", "region": "east"}}, &lat)
	hit(t, e, 30)
	if p := sli(t, e, "metric=latency_p99&region=east&window=5s"); p.Value < 0.040 || p.Value > 0.5 {
		t.Fatalf("p99 with 40ms latency = %v s", p.Value)
	}
	mustCall(t, e, "DELETE", "/api/faults/"+lat.ID, nil, nil)

	var dep FaultRecord
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: "dependency_down", Params: map[string]string{"dependency": "recs"}}, &dep)
	if codes, _ := hit(t, e, 20); codes[500] != 20 {
		t.Fatalf("dependency down: codes %v, want 20 x 500", codes)
	}
	var res ActionResult
	mustCall(t, e, "POST", "/api/actions", ActionRequest{Name: "shed", Params: map[string]string{"dependency": "recs"}}, &res)
	if !strings.Contains(res.Detail, "shedding recs") {
		t.Fatalf("shed detail %q", res.Detail)
	}
	codes, bodies := hit(t, e, 20)
	if want := "service=web region=east version=v1 recs=shed"; codes[200] != 20 || bodies[want] != 20 {
		t.Fatalf("shed: codes %v bodies %v, want 20 x %q", codes, bodies, want)
	}
	var st State
	mustCall(t, e, "GET", "/api/state", nil, &st)
	if !slices.Equal(st.Shed, []string{"recs"}) || len(st.Faults) != 1 || st.Faults[0].ID != dep.ID {
		t.Fatalf("state shed=%v faults=%+v", st.Shed, st.Faults)
	}
	mustCall(t, e, "POST", "/api/actions", ActionRequest{Name: "unshed", Params: map[string]string{"dependency": "recs"}}, nil)
	var stopped StopAnswer
	mustCall(t, e, "POST", "/api/faults/stop", FaultRequest{Kind: "dependency_down", Params: map[string]string{"dependency": "recs"}, ID: dep.ID}, &stopped)
	if len(stopped.Stopped) != 1 || stopped.Stopped[0].ID != dep.ID || stopped.Stopped[0].EndedAt == 0 {
		t.Fatalf("stop by id = %+v, want %s ended", stopped, dep.ID)
	}
	if codes, bodies := hit(t, e, 10); codes[200] != 10 || bodies["service=web region=east version=v1 recs=ok"] != 10 {
		t.Fatalf("after restore codes %v bodies %v", codes, bodies)
	}
}

func TestReleaseAndPrune(t *testing.T) {
	e := start(t, Options{})
	for _, v := range []string{"v2", "v3", "v4", "v5"} {
		var r VersionResult
		mustCall(t, e, "POST", "/api/versions/"+v+"/deploy", nil, &r)
		if !r.Changed || !slices.Contains(r.Running, v) {
			t.Fatalf("deploy %s = %+v", v, r)
		}
	}
	var r VersionResult
	mustCall(t, e, "POST", "/api/versions/v5/deploy", nil, &r)
	if r.Changed {
		t.Fatalf("second deploy changed: %+v", r)
	}
	if code := call(t, e, "POST", "/api/versions/v1/stop", nil, nil); code != http.StatusConflict {
		t.Fatalf("stop stable: status %d, want 409", code)
	}
	mustCall(t, e, "POST", "/api/versions/v4/promote", nil, &r)
	if r.Stable != "v4" {
		t.Fatalf("promote = %+v", r)
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		mustCall(t, e, "POST", "/api/versions/"+v+"/stop", nil, nil)
	}
	// v5 still runs; v4 is stable; v1 is what v4 replaced (its rollback
	// target): none may go. v2 and v3 never served: they go.
	var p PruneResult
	mustCall(t, e, "POST", "/api/artifacts/prune?keep=1", nil, &p)
	if !slices.Equal(p.Removed, []string{"v2", "v3"}) || !slices.Equal(p.Artifacts, []string{"v1", "v4", "v5"}) {
		t.Fatalf("prune keep=1 = %+v", p)
	}
	mustCall(t, e, "POST", "/api/versions/v5/stop", nil, nil)
	mustCall(t, e, "POST", "/api/artifacts/prune?keep=0", nil, &p)
	if !slices.Equal(p.Removed, []string{"v5"}) || !slices.Equal(p.Artifacts, []string{"v1", "v4"}) {
		t.Fatalf("prune keep=0 = %+v, want the failed canary v5 gone, v4 and its rollback target v1 kept", p)
	}
	mustCall(t, e, "POST", "/api/artifacts/prune?keep=0", nil, &p)
	if !slices.Equal(p.Removed, []string{}) || !slices.Equal(p.Artifacts, []string{"v1", "v4"}) {
		t.Fatalf("second prune = %+v, want nothing more removed", p)
	}
	var st State
	mustCall(t, e, "GET", "/api/state", nil, &st)
	if st.Stable != "v4" || !slices.Equal(st.Running, []string{"v4"}) || !slices.Equal(st.Artifacts, []string{"v1", "v4"}) ||
		!slices.Equal(st.Promoted, []string{"v1", "v4"}) {
		t.Fatalf("state = stable %s running %v artifacts %v promoted %v", st.Stable, st.Running, st.Artifacts, st.Promoted)
	}
	if _, ok := st.VersionWeights["v5"]; ok {
		t.Fatalf("pruned v5 still has a weight: %v", st.VersionWeights)
	}
}

// Issue 10 item 6 through the HTTP API, as the deploy workflow drives it:
// v5 stable, v6 and v7 rolled back (pruning after each rollback), v8
// promoted. Pruning with keep 3 must keep v8, its rollback target v5 and
// the newest other promoted one, v4, and remove the failed canaries first.
func TestPruneKeepsRollbackTarget(t *testing.T) {
	e := start(t, Options{})
	deploy := func(v string, promote bool) {
		t.Helper()
		mustCall(t, e, "POST", "/api/versions/"+v+"/deploy", nil, nil)
		if !promote {
			mustCall(t, e, "POST", "/api/versions/"+v+"/stop", nil, nil) // rolled back
			return
		}
		mustCall(t, e, "POST", "/api/versions/"+v+"/promote", nil, nil)
	}
	prune := func(current string) PruneResult {
		t.Helper()
		var p PruneResult
		mustCall(t, e, "POST", "/api/artifacts/prune?keep=3&current="+current, nil, &p)
		return p
	}
	for _, v := range []string{"v2", "v3", "v4", "v5"} {
		deploy(v, true)
	}
	// The previous stable ones are stopped after promotion.
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		mustCall(t, e, "POST", "/api/versions/"+v+"/stop", nil, nil)
	}
	if p := prune("v5"); !slices.Equal(p.Removed, []string{"v1", "v2"}) || !slices.Equal(p.Artifacts, []string{"v3", "v4", "v5"}) {
		t.Fatalf("after v5's promotion: %+v, want v1 v2 removed", p)
	}
	deploy("v6", false)
	if p := prune("v5"); !slices.Equal(p.Removed, []string{"v6"}) || !slices.Equal(p.Artifacts, []string{"v3", "v4", "v5"}) {
		t.Fatalf("after v6's rollback: %+v, want the failed canary v6 removed, v5 and its target v4 kept", p)
	}
	deploy("v7", false)
	deploy("v8", true)
	mustCall(t, e, "POST", "/api/versions/v5/stop", nil, nil)
	p := prune("v8")
	if !slices.Equal(p.Removed, []string{"v7", "v3"}) || !slices.Equal(p.Artifacts, []string{"v4", "v5", "v8"}) {
		t.Fatalf("after v8's promotion: %+v, want v7 (failed canary) then v3 removed; v8, its rollback target v5 and v4 kept", p)
	}
	// The rollback target can still take traffic: it is a known artifact.
	mustCall(t, e, "PUT", "/api/weights/versions", map[string]int{"v5": 0, "v8": 100}, nil)
	if code := call(t, e, "POST", "/api/artifacts/prune?keep=3&current=v9", nil, nil); code != http.StatusBadRequest {
		t.Fatalf("prune with an unknown current: status %d, want 400", code)
	}
}

func TestBadRequests(t *testing.T) {
	e := start(t, Options{})
	for _, c := range []struct {
		method, path string
		body         any
		code         int
		want         string
	}{
		{"PUT", "/api/weights/versions", map[string]int{"v9": 10}, 400, "weights.v9: unknown version (allowed: v1)"},
		{"PUT", "/api/weights/regions", map[string]int{"east": 101}, 400, "weights.east: 101 is out of range (allowed 0..100)"},
		{"PUT", "/api/weights/regions", map[string]string{"east": "x"}, 400, "body: expected int, got string"},
		{"POST", "/api/faults", FaultRequest{Kind: "meteor"}, 400, `kind "meteor": allowed bad_version, dependency_down, error_rate, latency, region_down`},
		{"POST", "/api/faults", FaultRequest{Kind: "error_rate", Params: map[string]string{"rate": "2"}}, 400, `params.rate "2": allowed a number in (0, 1]`},
		{"POST", "/api/faults", FaultRequest{Kind: "region_down", Params: map[string]string{"region": "north"}}, 400, `params.region "north": allowed east, west`},
		{"POST", "/api/faults", FaultRequest{Kind: "latency", Params: map[string]string{"ms": "5", "zone": "a"}}, 400, "params.zone: not a parameter of latency"},
		{"POST", "/api/actions", ActionRequest{Name: "reboot"}, 400, `name "reboot": allowed load, shed, unshed`},
		{"GET", "/api/sli?metric=cpu", nil, 400, `metric "cpu": allowed error_rate, latency_p99, request_rate, up`},
		{"GET", "/api/sli?metric=up&window=1h", nil, 400, `window "1h"`},
		{"POST", "/api/artifacts/prune?keep=-1", nil, 400, "keep -1: allowed 0 or more"},
		{"POST", "/api/versions/v9/promote", nil, 409, `version "v9": not running`},
		{"DELETE", "/api/faults/f42", nil, 404, `fault "f42": no such fault`},
		{"PUT", "/api/load", map[string]float64{"multiplier": -1}, 400, "multiplier: required, allowed 0..100"},
	} {
		var eb ErrorBody
		code := call(t, e, c.method, c.path, c.body, &eb)
		if code != c.code || !strings.Contains(eb.Error, c.want) {
			t.Errorf("%s %s: %d %q, want %d containing %q", c.method, c.path, code, eb.Error, c.code, c.want)
		}
	}
	// Nothing changed.
	var st State
	mustCall(t, e, "GET", "/api/state", nil, &st)
	if len(st.Faults) != 0 || st.RegionWeights["east"] != 50 || st.VersionWeights["v1"] != 100 {
		t.Fatalf("state changed by bad requests: %+v", st)
	}
}

func TestLoadGeneratorAndMetrics(t *testing.T) {
	e := start(t, Options{RPS: 200})
	time.Sleep(1200 * time.Millisecond)
	base := sli(t, e, "metric=request_rate&window=1s")
	e.SetLoad(2)
	time.Sleep(1200 * time.Millisecond)
	double := sli(t, e, "metric=request_rate&window=1s")
	t.Logf("rate at 1x %.0f/s, at 2x %.0f/s", base.Value, double.Value)
	// Loose bounds: the machine is shared.
	if base.Value < 120 || base.Value > 260 {
		t.Errorf("rate at 1x = %.0f/s, want ~200", base.Value)
	}
	if double.Value < 1.5*base.Value {
		t.Errorf("rate at 2x = %.0f/s, want ~2 x %.0f", double.Value, base.Value)
	}
	var ld Load
	mustCall(t, e, "PUT", "/api/load", map[string]float64{"multiplier": 0}, &ld)
	if ld.Multiplier != 0 || ld.RPS != 200 {
		t.Fatalf("load = %+v", ld)
	}

	resp, err := http.Get(e.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	for _, want := range []string{
		`drillship_local_requests_total{code="200",region="east",version="v1"}`,
		`drillship_local_requests_total{code="200",region="west",version="v1"}`,
		`drillship_local_request_duration_seconds_bucket{region="east",version="v1",le="0.005"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	lines := e.Summary()
	if len(lines) != 5 || !strings.Contains(lines[0], e.FrontURL()) || !strings.Contains(lines[3], "instance east/v1: http://127.0.0.1:") {
		t.Errorf("summary = %q", lines)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	e, err := Start(context.Background(), Options{RPS: 100, Bucket: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mustCall(t, e, "POST", "/api/versions/v2/deploy", nil, nil)
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: "latency", Params: map[string]string{"ms": "2000"}}, nil)
	time.Sleep(400 * time.Millisecond) // requests are in flight, held by the latency fault
	http.DefaultClient.CloseIdleConnections()
	start := time.Now()
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %s with requests in flight", d)
	}
	if _, err := http.Get(e.FrontURL()); err == nil {
		t.Errorf("front proxy still answers after Close")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before+2 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Regions: []string{"east", "east"}}, `region "east": listed twice`},
		{Options{Regions: []string{"a b"}}, `region "a b"`},
		{Options{Bucket: time.Microsecond}, "bucket 1µs: allowed 1ms..1m"},
		{Options{Stable: "none"}, `version "none"`},
	} {
		e, err := Start(context.Background(), c.o)
		if c.want == "" {
			if err == nil {
				e.Close()
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			if e != nil {
				e.Close()
			}
			t.Errorf("Start(%+v) = %v, want error containing %q", c.o, err, c.want)
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}
