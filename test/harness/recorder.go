package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/drillship/drillship/localenv"
)

// Recorder is a proxy in front of the local environment's control API that
// records every state-changing request and whether it changed the state.
type Recorder struct {
	upstream string
	srv      *httptest.Server
	mu       sync.Mutex // serializes mutations so before/after are exact
	muts     []Mutation
}

// Mutation is one state-changing request.
type Mutation struct {
	Key     string // method, path and body
	Changed bool
}

// NewRecorder starts a recording proxy in front of upstream.
func NewRecorder(t testing.TB, upstream string) *Recorder {
	t.Helper()
	r := &Recorder{upstream: upstream}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// URL is the proxy's address, for a worker's --local-env.
func (r *Recorder) URL() string { return r.srv.URL }

// world is the part of the environment's state that activities change.
type world struct {
	RegionWeights  map[string]int
	VersionWeights map[string]int
	Stable         string
	Running        []string
	Artifacts      []string
	Faults         []string // active fault ids
	Shed           []string
	Load           localenv.Load
}

func (r *Recorder) snapshot() (string, error) {
	var st localenv.State
	if err := TryGetJSON(r.upstream+"/api/state", &st); err != nil {
		return "", err
	}
	w := world{RegionWeights: st.RegionWeights, VersionWeights: st.VersionWeights, Stable: st.Stable,
		Running: st.Running, Artifacts: st.Artifacts, Shed: st.Shed, Load: st.Load}
	for _, f := range st.Faults {
		w.Faults = append(w.Faults, f.ID)
	}
	sort.Strings(w.Running)
	sort.Strings(w.Faults)
	b, err := json.Marshal(w)
	return string(b), err
}

func (r *Recorder) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	mutating := req.Method != http.MethodGet && req.Method != http.MethodHead
	if mutating {
		r.mu.Lock()
		defer r.mu.Unlock()
	}
	var before string
	if mutating {
		before, _ = r.snapshot()
	}
	// A worker killed mid-request must not cancel the upstream call: the
	// change may or may not land, as with a real API, and it is recorded.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	up, err := http.NewRequestWithContext(ctx, req.Method, r.upstream+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	up.Header = req.Header.Clone()
	resp, err := http.DefaultClient.Do(up)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if mutating {
		after, _ := r.snapshot()
		r.muts = append(r.muts, Mutation{Key: req.Method + " " + req.URL.RequestURI() + " " + string(body), Changed: before != after})
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

// Mutations is every state-changing request so far, in order.
func (r *Recorder) Mutations() []Mutation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Mutation(nil), r.muts...)
}

// Effects sums up what reached the environment.
type Effects struct {
	Changes    int      // requests that changed the state
	Duplicates []string // state changes made more than once by the same request
	Repeats    int      // requests that repeated an earlier one and changed nothing (harmless retries)
}

// Effects sums up the mutations so far.
func (r *Recorder) Effects() Effects {
	var e Effects
	changed, seen := map[string]int{}, map[string]int{}
	for _, m := range r.Mutations() {
		seen[m.Key]++
		if m.Changed {
			e.Changes++
			changed[m.Key]++
		} else if seen[m.Key] > 1 {
			e.Repeats++
		}
	}
	for k, n := range changed {
		// The same load multiplier set twice, say 2 then 1 then 2, would be
		// two real changes; none of the scenarios does that.
		if n > 1 {
			e.Duplicates = append(e.Duplicates, fmt.Sprintf("%dx %s", n, k))
		}
	}
	sort.Strings(e.Duplicates)
	return e
}
