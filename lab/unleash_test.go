package lab

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/drillship/drillship/activities/unleash/unleashapi"
)

// TestLabUnleashFlagObeyed starts a real Unleash on the lab's PostgreSQL and
// shows that the sample service obeys the lab flag: off through the admin
// API, and within a poll its requests no longer go through the feature;
// on again, and they do.
func TestLabUnleashFlagObeyed(t *testing.T) {
	l := Start(t, Options{Parts: PartFlags})
	u := l.Unleash
	t.Logf("unleash %s: install %dms (0: reused), start to healthy and flag made %dms", u.URL, u.InstallMs, u.StartMs)
	through := func() bool {
		t.Helper()
		resp, err := http.Get(l.Service("v1").URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Feature") == "on"
	}
	if !through() {
		t.Fatal("the lab flag starts on: requests should go through the feature")
	}
	admin := unleashapi.NewAdmin(u.URL, u.AdminToken, 5*time.Second)
	ctx := context.Background()
	for _, on := range []bool{false, true} {
		flipped := time.Now()
		if err := admin.Toggle(ctx, u.Project, u.Feature, u.Environment, on); err != nil {
			t.Fatal(err)
		}
		e, err := admin.State(ctx, u.Project, u.Feature, u.Environment)
		if err != nil || e.Enabled != on {
			t.Fatalf("admin API reads the flag back as enabled=%v (%v), want %v", e.Enabled, err, on)
		}
		deadline := time.Now().Add(5 * time.Second)
		for through() != on {
			if time.Now().After(deadline) {
				t.Fatalf("flag set to %v: the service still does not obey it after 5s", on)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("flag %v: obeyed by the service %dms after the admin call", on, time.Since(flipped).Milliseconds())
	}
	// The state file leads another process to the same server.
	st, err := Load(l.StatePath())
	if err != nil || st.Unleash == nil || st.Unleash.URL != u.URL || !st.Unleash.healthy() {
		t.Fatalf("state file unleash %+v (%v): want the running server", st.Unleash, err)
	}
}
