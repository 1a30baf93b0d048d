package httpprobe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
)

// seenLog records the requests the test server got.
type seenLog struct {
	mu   sync.Mutex
	reqs []string
}

func (s *seenLog) first() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs[0]
}

func server(t *testing.T) (*httptest.Server, *seenLog) {
	seen := &seenLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.mu.Lock()
		seen.reqs = append(seen.reqs, r.Method+" "+r.URL.Path+" host="+r.Host+" x="+r.Header.Get("X-Probe"))
		seen.mu.Unlock()
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte(`{"status":"ready","version":"v2"}`))
		case "/slow":
			time.Sleep(300 * time.Millisecond)
			_, _ = w.Write([]byte("late"))
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func sample(t *testing.T, p *Prober, q activities.Query) activities.Sample {
	t.Helper()
	before := time.Now().UnixMilli()
	s, err := p.Sample(context.Background(), q)
	if err != nil {
		t.Fatalf("Sample(%+v): %v", q, err)
	}
	if s.At < before || s.At > time.Now().UnixMilli() {
		t.Fatalf("At %d outside the probe (%d..now)", s.At, before)
	}
	return s
}

func TestProbeOutcomes(t *testing.T) {
	srv, seen := server(t)
	p, err := New(map[string]any{"headers": map[string]any{"Host": "shop.example", "X-Probe": "drillship"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		q      activities.Query
		value  float64
		detail string
	}{
		{"ok", activities.Query{Metric: "up", Expr: srv.URL + "/ok"}, 1, "status 200"},
		{"5xx", activities.Query{Metric: "up", Expr: srv.URL + "/fail"}, 0, "status 500, expected 200-399"},
		{"expected 500", activities.Query{Metric: "up", Expr: srv.URL + "/fail", Params: map[string]string{"expectStatus": "500,503"}}, 1, "status 500"},
		{"redirect not followed", activities.Query{Metric: "up", Expr: srv.URL + "/moved", Params: map[string]string{"expectStatus": "200"}}, 0, "status 302, expected 200"},
		{"body matches", activities.Query{Expr: srv.URL + "/ok", Params: map[string]string{"bodyMatch": `"version":"v2"`}}, 1, "status 200"},
		{"body differs", activities.Query{Expr: srv.URL + "/ok", Params: map[string]string{"bodyMatch": `"version":"v3"`}}, 0, `body does not match "\"version\":\"v3\""`},
		{"too slow", activities.Query{Expr: srv.URL + "/slow", Params: map[string]string{"maxLatency": "100ms"}}, 0, "over maxLatency 100ms"},
		{"timeout", activities.Query{Expr: srv.URL + "/slow", Params: map[string]string{"timeout": "50ms"}}, 0, "no answer within 50ms"},
		{"head", activities.Query{Expr: srv.URL + "/ok", Params: map[string]string{"method": "HEAD"}}, 1, "HEAD " + srv.URL + "/ok: status 200"},
		{"refused", activities.Query{Expr: "http://127.0.0.1:1/"}, 0, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sample(t, p, tc.q)
			if s.Value != tc.value || !strings.Contains(s.Detail, tc.detail) {
				t.Fatalf("got value %v detail %q; want %v and %q", s.Value, s.Detail, tc.value, tc.detail)
			}
		})
	}
	if got := seen.first(); got != "GET /ok host=shop.example x=drillship" {
		t.Fatalf("first request %q: want GET with the Host and X-Probe headers of the settings", got)
	}
}

func TestDefaultURLFromSettings(t *testing.T) {
	srv, _ := server(t)
	p, err := New(map[string]any{"url": srv.URL + "/ok", "method": "head", "timeout": "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if s := sample(t, p, activities.Query{Metric: "up"}); s.Value != 1 || !strings.HasPrefix(s.Detail, "HEAD "+srv.URL+"/ok") {
		t.Fatalf("sample %+v", s)
	}
}

func TestBadQueriesArePermanent(t *testing.T) {
	p, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    activities.Query
		want string
	}{
		{activities.Query{}, "expr (the URL to probe) is required"},
		{activities.Query{Metric: "error_rate", Expr: "http://x/"}, `metric "error_rate"`},
		{activities.Query{Expr: "ftp://x/"}, "http or https"},
		{activities.Query{Expr: "http://x/", Params: map[string]string{"expectStatus": "2xx"}}, "params.expectStatus"},
		{activities.Query{Expr: "http://x/", Params: map[string]string{"bodyMatch": "("}}, "params.bodyMatch"},
		{activities.Query{Expr: "http://x/", Params: map[string]string{"maxLatency": "fast"}}, "params.maxLatency"},
		{activities.Query{Expr: "http://x/", Params: map[string]string{"expect": "200"}}, "params.expect"},
		{activities.Query{Expr: "http://x/", Params: map[string]string{"method": "HEAD", "bodyMatch": "ok"}}, "HEAD answer has no body"},
	} {
		_, err := p.Sample(context.Background(), tc.q)
		if !activities.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Sample(%+v) = %v, want permanent error with %q", tc.q, err, tc.want)
		}
	}
	for cfg, want := range map[string]map[string]any{
		"method":  {"method": "POST"},
		"timeout": {"timeout": "-1s"},
		"url":     {"url": "localhost:80"},
		"retries": {"retries": 3},
	} {
		if _, err := New(want); err == nil || !strings.Contains(err.Error(), cfg) {
			t.Errorf("New(%v) = %v, want error naming %s", want, err, cfg)
		}
	}
}
