package local

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/localenv"
)

// activityEnv runs the activities over the environment at url in the SDK's
// test activity environment (the activities read their attempt from it).
func activityEnv(t *testing.T, url string) (*testsuite.TestActivityEnvironment, *activities.Activities) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.SetTestTimeout(20 * time.Second)
	a := activities.New(activities.NewRegistry(Provider(url)), nil)
	env.RegisterActivity(a)
	return env, a
}

func post(t *testing.T, url string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

func activeFaults(t *testing.T, e *localenv.Env) map[string]localenv.FaultRecord {
	t.Helper()
	resp, err := http.Get(e.URL() + "/api/faults")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all []localenv.FaultRecord
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	out := map[string]localenv.FaultRecord{}
	for _, f := range all {
		if f.Active {
			out[f.ID] = f
		}
	}
	return out
}

// Issue 11 item 2: a drill injects a fault, the environment restarts, a
// person puts in a latency fault that gets the id the drill still holds.
// The drill's restore must not end it. On the old code the restore deleted
// by the stored id and ended the person's fault, reporting success.
func TestRestoreAfterRestartLeavesPersonsFault(t *testing.T) {
	lat := activities.Fault{Kind: localenv.FaultLatency, Params: map[string]string{"ms": "40", "region": "east"}, Owner: "drill-7"}
	target := activities.Target{Provider: Name}

	e1 := startEnv(t)
	env, a := activityEnv(t, e1.URL())
	v, err := env.ExecuteActivity(a.InjectFault, activities.FaultInput{Target: target, Fault: lat})
	if err != nil {
		t.Fatal(err)
	}
	var injected activities.FaultResult
	if err := v.Get(&injected); err != nil || injected.Handle == "" {
		t.Fatalf("inject = %+v, %v", injected, err)
	}
	if f := activeFaults(t, e1)[injected.Handle]; f.Owner != "drill-7" {
		t.Fatalf("injected fault %+v: want owner drill-7", f)
	}
	e1.Close()

	e2 := startEnv(t)
	var person localenv.FaultRecord
	post(t, e2.URL()+"/api/faults", localenv.FaultRequest{Kind: localenv.FaultLatency, Params: map[string]string{"ms": "40", "region": "east"}, ID: injected.Handle}, &person)
	if person.ID != injected.Handle {
		t.Fatalf("person's fault id %s, want the colliding %s", person.ID, injected.Handle)
	}

	env, a = activityEnv(t, e2.URL())
	v, err = env.ExecuteActivity(a.StopFault, activities.FaultInput{Target: target, Fault: lat, Handle: injected.Handle})
	if err != nil {
		t.Fatal(err)
	}
	var stopped activities.FaultResult
	if err := v.Get(&stopped); err != nil {
		t.Fatal(err)
	}
	if !stopped.NotFound || len(stopped.Stopped) != 0 || !strings.HasPrefix(stopped.NotOurs, injected.Handle+" belongs to no drill") {
		t.Fatalf("restore = %+v, want notFound and notOurs naming %s", stopped, injected.Handle)
	}
	if f, ok := activeFaults(t, e2)[person.ID]; !ok || f.Owner != "" {
		t.Fatalf("the person's fault %s was ended by the drill's restore", person.ID)
	}
}

// A fault that never started (the inject failed before it) is not found,
// and that is not an error: no "could not stop" for something never there.
func TestStopFaultNeverStarted(t *testing.T) {
	e := startEnv(t)
	env, a := activityEnv(t, e.URL())
	v, err := env.ExecuteActivity(a.StopFault, activities.FaultInput{Target: activities.Target{Provider: Name},
		Fault: activities.Fault{Kind: localenv.FaultRegionDown, Params: map[string]string{"region": "west"}, Owner: "drill-8"}})
	if err != nil {
		t.Fatal(err)
	}
	var r activities.FaultResult
	if err := v.Get(&r); err != nil || !r.NotFound || r.NotOurs != "" || len(r.Stopped) != 0 {
		t.Fatalf("stop of a fault never started = %+v, %v; want notFound", r, err)
	}
}

// The snapshot records weights and load; PutBack restores both, says what
// it changed, reads back, and changes nothing when run again.
func TestSnapshotPutBack(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	_, a := activityEnv(t, e.URL())
	regions := activities.Target{Provider: Name, Config: map[string]any{"level": "region"}}
	versions := activities.Target{Provider: Name}
	runner := activities.Target{Provider: Name}
	snap, err := a.TakeSnapshot(ctx, activities.SnapshotInput{Traffic: []activities.Target{regions, versions}, Runner: &runner})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Weights) != 2 || snap.Weights[0].Weights["east"] != 50 || snap.Weights[1].Weights["v1"] != 100 || snap.Load == nil || *snap.Load != 1 || snap.At == 0 {
		t.Fatalf("snapshot = %+v", snap)
	}

	// What a drill does: drain east, double the load.
	p := Provider(e.URL())
	tr, _ := p.Traffic(map[string]any{"level": "region"})
	if err := tr.SetWeights(ctx, activities.Weights{"east": 0, "west": 100}); err != nil {
		t.Fatal(err)
	}
	run, _ := p.Runner(nil)
	if _, err := run.Run(ctx, activities.Action{Name: "load", Params: map[string]string{"multiplier": "2"}}); err != nil {
		t.Fatal(err)
	}

	res, err := a.PutBack(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"weights local: east=0 west=100 -> east=50 west=50", "load 2x -> 1x"}
	if strings.Join(res.Changed, "|") != strings.Join(want, "|") || res.At == 0 {
		t.Fatalf("put back changed %q, want %q", res.Changed, want)
	}
	var st localenv.State
	resp, err := http.Get(e.URL() + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.RegionWeights["east"] != 50 || st.RegionWeights["west"] != 50 || st.VersionWeights["v1"] != 100 || st.Load.Multiplier != 1 {
		t.Fatalf("after put back: regions %v versions %v load %v", st.RegionWeights, st.VersionWeights, st.Load.Multiplier)
	}

	again, err := a.PutBack(ctx, snap)
	if err != nil || len(again.Changed) != 0 {
		t.Fatalf("second put back changed %q, %v; want nothing", again.Changed, err)
	}
}
