package ofunleash

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
)

// The buckets the Unleash Node client (unleash-client, as installed with
// unleash-server 6.10.1) computes for the same group and key.
func TestNormalizeMatchesUnleashClients(t *testing.T) {
	for _, tc := range []struct {
		group, key string
		want       uint32
	}{
		{"gr1", "123", 73},
		{"groupX", "999", 25},
		{"drillship-lab-feature", "1", 63},
		{"drillship-lab-feature", "42", 57},
		{"a", "", 36},
	} {
		if got := Normalize(tc.group, tc.key); got != tc.want {
			t.Errorf("Normalize(%q, %q) = %d, want %d", tc.group, tc.key, got, tc.want)
		}
	}
}

func TestEvaluate(t *testing.T) {
	rollout := func(p string) Strategy {
		return Strategy{Name: "flexibleRollout", Parameters: map[string]string{"rollout": p, "groupId": "gr1"}}
	}
	for _, tc := range []struct {
		name string
		f    Feature
		key  string
		want bool
	}{
		{"off", Feature{Name: "f", Enabled: false, Strategies: []Strategy{{Name: "default"}}}, "123", false},
		{"on without strategies", Feature{Name: "f", Enabled: true}, "123", true},
		{"default strategy", Feature{Name: "f", Enabled: true, Strategies: []Strategy{{Name: "default"}}}, "123", true},
		{"bucket 73 within 73%", Feature{Name: "f", Enabled: true, Strategies: []Strategy{rollout("73")}}, "123", true},
		{"bucket 73 outside 72%", Feature{Name: "f", Enabled: true, Strategies: []Strategy{rollout("72")}}, "123", false},
		{"0% never", Feature{Name: "f", Enabled: true, Strategies: []Strategy{rollout("0")}}, "", false},
		{"constrained strategy not taken", Feature{Name: "f", Enabled: true, Strategies: []Strategy{{Name: "default", Constraints: []json.RawMessage{[]byte(`{}`)}}}}, "123", false},
		{"unknown strategy not taken", Feature{Name: "f", Enabled: true, Strategies: []Strategy{{Name: "userWithId"}}}, "123", false},
	} {
		if got, _ := Evaluate(tc.f, tc.key); got != tc.want {
			t.Errorf("%s: Evaluate = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Through OpenFeature: a flag read from a client API answering as Unleash
// does, the token sent, and a missing flag answers the default with an
// error.
func TestThroughOpenFeature(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/client/features" || r.Header.Get("Authorization") != "default:development.secret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"version":2,"features":[{"name":"kill","enabled":true,"strategies":[{"name":"flexibleRollout","parameters":{"rollout":"100","stickiness":"default","groupId":"kill"},"constraints":[]}]}]}`))
	}))
	defer srv.Close()
	p := New(srv.URL, "default:development.secret", time.Hour)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := Client("ofunleash-test", p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	on, err := c.BooleanValue(ctx, "kill", false, openfeature.NewEvaluationContext("u1", nil))
	if err != nil || !on {
		t.Fatalf("kill = %v (%v), want on", on, err)
	}
	if v, err := c.BooleanValue(ctx, "missing", true, openfeature.NewEvaluationContext("u1", nil)); err == nil || !v {
		t.Fatalf("missing = %v (%v), want the default with an error", v, err)
	}
	bad := New(srv.URL, "wrong", time.Hour)
	if err := bad.Start(context.Background()); err == nil {
		t.Fatal("a wrong token must fail the first fetch")
	}
}
