package localenv

import (
	"context"
	"strings"
	"testing"
)

// The case: after a restart of the environment, a drill's stored
// handle names a fault a person put in. The drill's stop must leave the
// person's fault alone, say whose it is, and end the drill's own fault.
// (Before ownership, stopping by the stored id ended the person's fault.)
func TestStopLeavesOthersFaults(t *testing.T) {
	e := start(t, Options{})
	lat := map[string]string{"ms": "40", "region": "east"}
	var mine, person, other FaultRecord
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: FaultLatency, Params: lat, Owner: "drill-a"}, &mine)
	// A person's fault with the id an old drill may still hold, and another
	// drill's fault of the same kind and params.
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: FaultLatency, Params: lat, ID: "f1"}, &person)
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: FaultLatency, Params: lat, Owner: "drill-b"}, &other)
	if person.ID != "f1" || mine.ID == other.ID || mine.ID == "f1" || other.ID == "f1" {
		t.Fatalf("ids: mine %s, person %s, other %s: want f1 for the person and three distinct ids", mine.ID, person.ID, other.ID)
	}
	// A retried inject finds the drill's own fault, not the others'.
	var again FaultRecord
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: FaultLatency, Params: lat, Owner: "drill-a"}, &again)
	if again.ID != mine.ID {
		t.Fatalf("retried inject = %s, want %s", again.ID, mine.ID)
	}

	var ans StopAnswer
	mustCall(t, e, "POST", "/api/faults/stop", FaultRequest{Kind: FaultLatency, Params: lat, Owner: "drill-a", ID: "f1"}, &ans)
	if ans.NotOurs != "f1 belongs to no drill (put in by hand)" || ans.NotFound || len(ans.Stopped) != 1 || ans.Stopped[0].ID != mine.ID {
		t.Fatalf("stop with a colliding id = %+v, want notOurs for f1 and %s stopped", ans, mine.ID)
	}
	active := map[string]string{}
	for _, f := range e.faultList(true) {
		active[f.ID] = f.Owner
	}
	if _, ok := active["f1"]; !ok || active[other.ID] != "drill-b" || len(active) != 2 {
		t.Fatalf("active after drill-a's stop: %v, want f1 (nobody) and %s (drill-b)", active, other.ID)
	}

	// The handle of another drill's fault: left alone too.
	mustCall(t, e, "POST", "/api/faults/stop", FaultRequest{Kind: FaultLatency, Params: lat, Owner: "drill-a", ID: other.ID}, &ans)
	if ans.NotOurs != other.ID+" belongs to drill-b" || len(ans.Stopped) != 1 || ans.Stopped[0].ID != mine.ID || ans.Stopped[0].Active {
		t.Fatalf("stop with another drill's id = %+v", ans)
	}
	// A caller without an owner (a run from before ownership) cannot end a
	// drill's fault by its id either.
	mustCall(t, e, "POST", "/api/faults/stop", FaultRequest{Kind: FaultLatency, Params: lat, ID: other.ID}, &ans)
	if ans.NotOurs != other.ID+" belongs to drill-b" || !ans.NotFound || len(ans.Stopped) != 0 {
		t.Fatalf("owner-less stop of a drill's fault = %+v", ans)
	}
	if n := len(e.faultList(true)); n != 2 {
		t.Fatalf("%d faults active, want 2", n)
	}
	// drill-b, handed the person's id, ends its own fault only.
	mustCall(t, e, "POST", "/api/faults/stop", FaultRequest{Kind: FaultLatency, Params: map[string]string{"ms": "40", "region": "east"}, Owner: "drill-b", ID: "f1"}, &ans)
	if len(ans.Stopped) != 1 || ans.Stopped[0].ID != other.ID {
		t.Fatalf("drill-b's stop = %+v", ans)
	}
	if a := e.faultList(true); len(a) != 1 || a[0].ID != "f1" {
		t.Fatalf("active = %+v, want only the person's f1", a)
	}
	// A chosen id that is taken is refused.
	if code := call(t, e, "POST", "/api/faults", FaultRequest{Kind: FaultErrorRate, Params: map[string]string{"rate": "0.5"}, ID: "f1"}, nil); code != 409 {
		t.Fatalf("inject with a taken id: %d, want 409", code)
	}
}

// A fault that was never started is reported as not found, not stopped and
// not an error.
func TestStopNeverStartedIsNotFound(t *testing.T) {
	e := start(t, Options{})
	var ans StopAnswer
	mustCall(t, e, "POST", "/api/faults/stop", FaultRequest{Kind: FaultRegionDown, Params: map[string]string{"region": "east"}, Owner: "drill-a"}, &ans)
	if !ans.NotFound || len(ans.Stopped) != 0 || ans.NotOurs != "" {
		t.Fatalf("stop of a fault never started = %+v, want notFound", ans)
	}
	// An unknown handle (an environment that restarted) is the same.
	mustCall(t, e, "POST", "/api/faults/stop", FaultRequest{Kind: FaultRegionDown, Params: map[string]string{"region": "east"}, Owner: "drill-a", ID: "fzzz"}, &ans)
	if !ans.NotFound || len(ans.Stopped) != 0 {
		t.Fatalf("stop of an unknown handle = %+v, want notFound", ans)
	}
}

// A region two owners took down stays down until both ended their fault.
func TestRegionDownOfTwoOwners(t *testing.T) {
	e := start(t, Options{})
	east := map[string]string{"region": "east"}
	var a, b FaultRecord
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: FaultRegionDown, Params: east, Owner: "drill-a"}, &a)
	mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: FaultRegionDown, Params: east}, &b)
	var ans StopAnswer
	mustCall(t, e, "POST", "/api/faults/stop", FaultRequest{Kind: FaultRegionDown, Params: east, Owner: "drill-a", ID: a.ID}, &ans)
	if len(ans.Stopped) != 1 || ans.Stopped[0].ID != a.ID {
		t.Fatalf("stop = %+v", ans)
	}
	if s := sli(t, e, "metric=up&region=east"); s.Value != 0 {
		t.Fatalf("up{east} while the person's region_down is in effect = %+v, want 0", s)
	}
	// Stopping again (a retried restore) reports the drill's fault as over
	// and still leaves the person's alone.
	mustCall(t, e, "POST", "/api/faults/stop", FaultRequest{Kind: FaultRegionDown, Params: east, Owner: "drill-a"}, &ans)
	if len(ans.Stopped) != 1 || ans.Stopped[0].ID != a.ID || ans.NotFound {
		t.Fatalf("second stop = %+v", ans)
	}
	mustCall(t, e, "DELETE", "/api/faults/"+b.ID, nil, nil)
	if s := sli(t, e, "metric=up&region=east"); s.Value != 1 {
		t.Fatalf("up{east} after both ended = %+v, want 1", s)
	}
}

// Ids are not reused after a restart: an old drill's handle must never name
// a fault put in after the restart (before, both environments said f1).
func TestFaultIDsUniqueAcrossRestart(t *testing.T) {
	seen := map[string]bool{}
	for range 3 {
		e, err := Start(context.Background(), Options{RPS: -1})
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{FaultLatency, FaultErrorRate} {
			p := map[string]string{"ms": "5"}
			if kind == FaultErrorRate {
				p = map[string]string{"rate": "0.1"}
			}
			var f FaultRecord
			mustCall(t, e, "POST", "/api/faults", FaultRequest{Kind: kind, Params: p, Owner: "d"}, &f)
			if seen[f.ID] || !strings.HasPrefix(f.ID, "f") || !nameRE.MatchString(f.ID) {
				t.Fatalf("fault id %q reused or malformed (seen %v)", f.ID, seen)
			}
			seen[f.ID] = true
		}
		e.Close()
	}
}
