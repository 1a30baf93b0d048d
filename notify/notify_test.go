package notify

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drillship/drillship/specfile"
)

var at = time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC).UnixMilli()

func rolledBack() Event {
	return Event{Type: DeployRolledBack, ID: NewID("deploy/web/v3", DeployRolledBack, ""), Time: at,
		Workflow: "deploy/web/v3", Service: "web", Environment: "prod", Version: "v3", Previous: "v1",
		Severity: Warning, Title: "web v3 rolled back to v1", Reason: "error_rate 0.21 > 0.05",
		Facts: []Fact{{"Failing sample", "2026-11-28T21:59:58Z"}, {"Time to rollback", "1.2s"}}}
}

func TestRenderSlack(t *testing.T) {
	cases := []struct {
		name string
		ev   Event
		want []string // in the text
		head string
	}{
		{"rolled back with numbers", rolledBack(), []string{":warning:", "web v3 rolled back to v1", "error_rate 0.21 > 0.05"}, "web v3 rolled back to v1"},
		{"rollback failed is loud", Event{Type: DeployRollbackFailed, Severity: Critical, Title: "web v3: rollback FAILED", Reason: "traffic not on v1", Workflow: "w", Time: at},
			[]string{":rotating_light:", "ACTION NEEDED: web v3: rollback FAILED", "traffic not on v1"}, "ACTION NEEDED: web v3: rollback FAILED"},
		{"no reason", Event{Type: DeployStarted, Severity: Info, Title: "web v2 deploy started", Workflow: "w", Time: at},
			[]string{":information_source: web v2 deploy started"}, "web v2 deploy started"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := ToSlack(c.ev)
			for _, w := range c.want {
				if !strings.Contains(m.Text, w) {
					t.Errorf("text %q lacks %q", m.Text, w)
				}
			}
			if m.Blocks[0].Type != "header" || m.Blocks[0].Text.Text != c.head {
				t.Errorf("header %+v, want %q", m.Blocks[0], c.head)
			}
			last := m.Blocks[len(m.Blocks)-1]
			if last.Type != "context" || !strings.Contains(last.Elements[0].Text, "2026-11-28T22:00:00Z") {
				t.Errorf("context block %+v", last)
			}
		})
	}
	// The numbers are fields, one each.
	m := ToSlack(rolledBack())
	var fields []string
	for _, b := range m.Blocks {
		for _, f := range b.Fields {
			fields = append(fields, f.Text)
		}
	}
	if strings.Join(fields, "|") != "*Failing sample:* 2026-11-28T21:59:58Z|*Time to rollback:* 1.2s" {
		t.Fatalf("fields %q", fields)
	}
}

func TestRenderCloudEvent(t *testing.T) {
	cases := []struct {
		ev               Event
		typ, source, sub string
	}{
		{rolledBack(), "dev.drillship.deploy.rolled_back", "/drillship/deploy/web", "deploy/web/v3"},
		{Event{Type: DrillFinished, ID: "drill/x/t/drill.finished", Drill: "region-failover", Workflow: "drill/x/t", Time: at},
			"dev.drillship.drill.finished", "/drillship/drill/region-failover", "drill/x/t"},
	}
	for _, c := range cases {
		b, ct, err := Body(KindCloudEvents, c.ev)
		if err != nil || !strings.HasPrefix(ct, "application/cloudevents+json") {
			t.Fatalf("body: %v %s", err, ct)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"specversion": "1.0", "type": c.typ, "source": c.source, "subject": c.sub,
			"id": c.ev.ID, "time": "2026-11-28T22:00:00Z", "datacontenttype": "application/json"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
		if data, _ := got["data"].(map[string]any); data["type"] != c.ev.Type {
			t.Errorf("data %v", got["data"])
		}
	}
}

func TestRouting(t *testing.T) {
	cfg := Config{Channels: []Channel{
		{Name: "all", Kind: KindSlack, URL: "http://x"},
		{Name: "web-prod", Kind: KindSlack, URL: "http://x", Services: []string{"web"}, Environments: []string{"prod"}},
		{Name: "rollbacks", Kind: KindCloudEvents, URL: "http://x", Events: []string{DeployRolledBack, DeployRollbackFailed}},
		{Name: "drills", Kind: KindSlack, URL: "http://x", Services: []string{"region-failover"}},
	}}
	cases := []struct {
		ev   Event
		want string
	}{
		{Event{Type: DeployStarted, Service: "web", Environment: "prod"}, "all,web-prod"},
		{Event{Type: DeployRolledBack, Service: "web", Environment: "staging"}, "all,rollbacks"},
		{Event{Type: DeployStarted, Service: "api", Environment: "prod"}, "all"},
		{Event{Type: DeployBreakGlass, Service: "api", Environment: "dev"}, "all,web-prod,rollbacks,drills"},
		{Event{Type: DrillStarted, Drill: "region-failover"}, "all,drills"},
	}
	for _, c := range cases {
		var names []string
		for _, ch := range cfg.For(c.ev) {
			names = append(names, ch.Name)
		}
		if got := strings.Join(names, ","); got != c.want {
			t.Errorf("%s %s/%s: %s, want %s", c.ev.Type, c.ev.Service, c.ev.Environment, got, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string // "" valid
	}{
		{Config{Channels: []Channel{{Name: "a", Kind: KindSlack, URL: "${SLACK_URL}"}}, Announce: []specfile.Duration{specfile.Duration(48 * time.Hour)}}, ""},
		{Config{}, "at least one channel"},
		{Config{Channels: []Channel{{Name: "a", Kind: "email", URL: "http://x"}}}, "kind"},
		{Config{Channels: []Channel{{Name: "a", Kind: KindSlack, URL: "ftp://x"}}}, "url"},
		{Config{Channels: []Channel{{Name: "a", Kind: KindSlack, URL: "http://x", Headers: map[string]string{"Authorization": "Bearer abc"}}}}, "${NAME}"},
		{Config{Channels: []Channel{{Name: "a", Kind: KindSlack, URL: "http://x", Events: []string{"deploy.exploded"}}}}, "not an event"},
		{Config{Channels: []Channel{{Name: "a", Kind: KindSlack, URL: "http://x"}, {Name: "a", Kind: KindSlack, URL: "http://x"}}}, "used twice"},
	}
	for i, c := range cases {
		ck := &specfile.Checker{File: "policy.yaml"}
		c.cfg.Check(ck, "notifications")
		err := ck.Errs.Err()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%d: %v", i, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%d: %v, want %q", i, err, c.want)
		}
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"HOOK": "https://hooks.example/T1/B2/s3cr3t"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if got, err := Expand("${HOOK}", lookup); err != nil || got != env["HOOK"] {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := Expand("${NOPE}/x", lookup); err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Fatalf("missing variable: %v", err)
	}
}

// TestSendActivity posts to a real receiver: the secret URL expanded, the
// body as rendered; a 500 is retried, a 404 is not, and neither error
// names the URL.
func TestSendActivity(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.Header.Get("Authorization")+" "+string(b))
		s := status
		mu.Unlock()
		w.WriteHeader(s)
	}))
	defer srv.Close()
	a := &Activities{Lookup: func(k string) (string, bool) {
		return map[string]string{"HOOK": srv.URL + "/secret", "TOKEN": "t0k"}[k], true
	}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	ch := Channel{Name: "hook", Kind: KindSlack, URL: "${HOOK}", Headers: map[string]string{"Authorization": "Bearer ${TOKEN}"}}
	v, err := env.ExecuteActivity(a.SendNotification, SendInput{Channel: ch, Event: rolledBack()})
	if err != nil {
		t.Fatal(err)
	}
	var r SendResult
	_ = v.Get(&r)
	if r.Status != 200 || len(bodies) != 1 || !strings.HasPrefix(bodies[0], "Bearer t0k {\"text\":") || !strings.Contains(bodies[0], "Time to rollback") {
		t.Fatalf("result %+v bodies %q", r, bodies)
	}
	for _, c := range []struct {
		status    int
		retryable bool
	}{{500, true}, {404, false}, {429, true}} {
		mu.Lock()
		status = c.status
		mu.Unlock()
		_, err := env.ExecuteActivity(a.SendNotification, SendInput{Channel: ch, Event: rolledBack()})
		var app *temporal.ApplicationError
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Fatalf("%d: %v", c.status, err)
		}
		if errorsAs(err, &app) && app.NonRetryable() == c.retryable {
			t.Fatalf("%d: retryable should be %v: %v", c.status, c.retryable, err)
		}
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
