package unleash_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/unleash"
	"github.com/drillship/drillship/activities/unleash/unleashapi"
	"github.com/drillship/drillship/lab"
)

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{}, "url (the Unleash server) or lab"},
		{map[string]any{"url": "http://u:4242"}, "token is required"},
		{map[string]any{"url": "u:4242", "token": "x"}, "base URL"},
		{map[string]any{"url": "http://u", "lab": "default", "token": "x"}, "not both"},
		{map[string]any{"lab": "default", "token": "x"}, "leave token out"},
		{map[string]any{"lab": "relative/dir"}, "lab"},
		{map[string]any{"lab": "default", "feature": "a b"}, "not an Unleash name"},
		{map[string]any{"lab": "default", "timeout": "2m"}, "up to 1m"},
		{map[string]any{"lab": "default", "flag": "x"}, "unknown field"},
		{map[string]any{"lab": "default", "on": "v1", "off": "v1"}, "two weight keys"},
	} {
		_, err := unleash.New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := unleash.New(map[string]any{"url": "https://flags.example.com/", "token": "${UNLEASH_TOKEN}", "feature": "checkout.v2"}); err != nil {
		t.Errorf("good settings: %v", err)
	}
}

func TestSetWeightsRefusesBadKeysWithoutIO(t *testing.T) {
	c, err := unleash.New(map[string]any{"url": "http://127.0.0.1:1", "token": "x", "feature": "f"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []activities.Weights{{"v2": 10}, {"on": 10, "off": 80}, {"on": 101}, {"canary": 10}} {
		if err := c.SetWeights(context.Background(), w); err == nil || !activities.IsPermanent(err) {
			t.Errorf("SetWeights(%v) = %v, want a permanent error", w, err)
		}
	}
}

// TestAgainstRealUnleash drives the lab's real Unleash: the kill switch and
// its restore (from the snapshot the flip kept), and the rollout as traffic,
// each read back from Unleash and obeyed by the lab's sample service.
func TestAgainstRealUnleash(t *testing.T) {
	l := lab.Start(t, lab.Options{Parts: lab.PartFlags})
	u := l.Unleash
	t.Logf("unleash: install %dms (0: reused), healthy with its flag %dms after start", u.InstallMs, u.StartMs)
	c, err := unleash.New(map[string]any{"lab": l.StatePath()})
	if err != nil {
		t.Fatal(err)
	}
	admin := unleashapi.NewAdmin(u.URL, u.AdminToken, 5*time.Second)
	ctx := context.Background()
	enabled := func() bool {
		t.Helper()
		e, err := admin.State(ctx, u.Project, u.Feature, u.Environment)
		if err != nil {
			t.Fatal(err)
		}
		return e.Enabled
	}
	tags := func() []unleashapi.Tag {
		t.Helper()
		tg, err := admin.Tags(ctx, u.Feature)
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	run := func(name, key string) string {
		t.Helper()
		out, err := c.Run(ctx, activities.Action{Name: name, Key: key})
		if err != nil {
			t.Fatalf("%s (%s): %v", name, key, err)
		}
		return out.Detail
	}

	// Kill switch: on -> off; a retried flip keeps the first snapshot; the
	// restore puts on back and drops the snapshot.
	if !enabled() {
		t.Fatal("the lab flag starts on")
	}
	if d := run(unleash.ActionOff, "drill-a/turn off"); !strings.Contains(d, "on -> off") || !strings.Contains(d, "served off by the client API") {
		t.Fatalf("flag_off said %q: want the flip and the client API serving it", d)
	} else {
		t.Log(d)
	}
	if enabled() {
		t.Fatal("flag_off: Unleash still has the flag on")
	}
	run(unleash.ActionOff, "drill-a/turn off")
	if tg := tags(); len(tg) != 1 || !strings.HasPrefix(tg[0].Value, "drillship-was-on-") {
		t.Fatalf("after two flips, tags %+v: want one snapshot saying it was on", tg)
	}
	waitObeyed(t, l, false)
	t.Log(run(unleash.ActionRestore, "drill-a/restore"))
	if !enabled() || len(tags()) != 0 {
		t.Fatalf("after restore: enabled %v, tags %+v; want on and no snapshot", enabled(), tags())
	}
	if d := run(unleash.ActionRestore, "drill-a/restore"); !strings.Contains(d, "nothing to put back") {
		t.Fatalf("a second restore said %q, want nothing to put back", d)
	}
	waitObeyed(t, l, true)

	// A flag that was off before the drill stays off after its restore,
	// though the drill turned it on.
	if err := admin.Toggle(ctx, u.Project, u.Feature, u.Environment, false); err != nil {
		t.Fatal(err)
	}
	run(unleash.ActionOn, "drill-b/turn on")
	if !enabled() {
		t.Fatal("flag_on: still off")
	}
	run(unleash.ActionRestore, "drill-b/restore")
	if enabled() {
		t.Fatal("restore turned on a flag that was off before the drill")
	}

	// Traffic: the rollout is the on side's weight, read back from Unleash.
	for _, canary := range []int{10, 50, 0, 100} {
		if err := c.SetWeights(ctx, activities.Weights{"on": canary, "off": 100 - canary}); err != nil {
			t.Fatal(err)
		}
		w, err := c.Weights(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w["on"] != canary || w["off"] != 100-canary {
			t.Fatalf("set canary %d, read back %v", canary, w)
		}
		if canary == 0 && enabled() {
			t.Fatal("on 0 must turn the flag off")
		}
		if canary == 10 {
			// The service sends about that share through the feature.
			waitShare(t, l, 0.10)
		}
	}
}

func through(t *testing.T, l *lab.Lab) bool {
	t.Helper()
	resp, err := http.Get(l.Service("v1").URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("X-Feature") == "on"
}

func waitObeyed(t *testing.T, l *lab.Lab, on bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for through(t, l) != on {
		if time.Now().After(deadline) {
			t.Fatalf("the service does not obey the flag (%v) after 5s", on)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitShare waits until 400 requests in a row go through the feature at
// about share (within 5 points): the client has the new rollout.
func waitShare(t *testing.T, l *lab.Lab, share float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got float64
	for time.Now().Before(deadline) {
		n := 0
		for i := 0; i < 400; i++ {
			if through(t, l) {
				n++
			}
		}
		got = float64(n) / 400
		if got > share-0.05 && got < share+0.05 {
			t.Logf("rollout %.0f%%: %.1f%% of 400 requests went through the feature", share*100, got*100)
			return
		}
	}
	t.Fatalf("rollout %.0f%%: %.1f%% of requests went through the feature", share*100, got*100)
}
