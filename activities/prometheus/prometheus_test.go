package prometheus

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/lab"
)

// load sends requests to url until the test ends.
func load(t *testing.T, url string) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: time.Second}
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
}

const errorRate = `sum(rate(drillship_lab_requests_total{version="v2",code=~"5.."}[5s])) / sum(rate(drillship_lab_requests_total{version="v2"}[5s]))`

func TestErrorRateFromRealPrometheus(t *testing.T) {
	l := lab.Start(t, lab.Options{Parts: lab.PartPrometheus})
	c, err := New(l.Settings()["prometheus"], nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// No requests yet: the ratio is 0/0, which says nothing.
	s, err := c.Sample(ctx, activities.Query{Metric: "error_rate", Expr: `sum(rate(drillship_lab_requests_total{version="v9"}[5s]))`})
	if err != nil {
		t.Fatal(err)
	}
	if !s.NoData {
		t.Fatalf("query of a version that does not exist: %+v, want NoData", s)
	}

	l.Service("v2").SetErrorRate(0.10)
	load(t, l.Service("v2").URL)

	// Prometheus scrapes every second; the 5s rate settles after a few.
	var got activities.Sample
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err = c.Sample(ctx, activities.Query{Metric: "error_rate", Expr: errorRate})
		if err != nil {
			t.Fatal(err)
		}
		if !got.NoData && got.Value > 0.08 && got.Value < 0.12 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("error rate %+v, want about 0.10", got)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if age := time.Now().UnixMilli() - got.At; age < 0 || age > 5000 {
		t.Fatalf("At %d is %dms from now; want Prometheus' evaluation time", got.At, age)
	}

	// Range mode over the last 10s: the max is at least the last value
	// (less float noise: the two queries run at slightly different times).
	rng, err := c.Sample(ctx, activities.Query{Expr: errorRate, Window: 10 * time.Second, Params: map[string]string{"mode": "range", "step": "1s", "agg": "max"}})
	if err != nil {
		t.Fatal(err)
	}
	last, err := c.Sample(ctx, activities.Query{Expr: errorRate, Window: 10 * time.Second, Params: map[string]string{"mode": "range", "step": "1s"}})
	if err != nil {
		t.Fatal(err)
	}
	if rng.NoData || last.NoData || rng.Value < last.Value-0.01 || rng.Value < 0.08 || rng.Value > 0.2 {
		t.Fatalf("range max %+v, last %+v", rng, last)
	}
	if !strings.Contains(rng.Detail, "max over 10s step 1s") {
		t.Fatalf("range detail %q", rng.Detail)
	}

	// Two series without aggregation, and broken PromQL, cannot work.
	if _, err := c.Sample(ctx, activities.Query{Expr: `drillship_lab_requests_total{version="v2"}`}); !activities.IsPermanent(err) || !strings.Contains(err.Error(), "2 series") {
		t.Fatalf("two series: err = %v", err)
	}
	if _, err := c.Sample(ctx, activities.Query{Expr: `sum(rate(x[5s]`}); !activities.IsPermanent(err) {
		t.Fatalf("bad PromQL: err = %v, want permanent", err)
	}
}

func TestParse(t *testing.T) {
	p, err := parse(activities.Query{Expr: "up", Window: time.Hour, Params: map[string]string{"mode": "range"}})
	if err != nil || !p.rng || p.step != time.Minute || p.agg != "last" {
		t.Fatalf("parse: %+v, %v", p, err)
	}
	for _, tc := range []struct {
		q    activities.Query
		want string
	}{
		{activities.Query{}, "expr"},
		{activities.Query{Expr: "up", Params: map[string]string{"mode": "matrix"}}, "params.mode"},
		{activities.Query{Expr: "up", Params: map[string]string{"mode": "range", "agg": "avg"}}, "params.agg"},
		{activities.Query{Expr: "up", Params: map[string]string{"step": "1s"}}, "need params.mode range"},
		{activities.Query{Expr: "up", Params: map[string]string{"stepp": "1s"}}, "params.stepp"},
	} {
		if _, err := parse(tc.q); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parse(%+v) = %v, want %q", tc.q, err, tc.want)
		}
	}
	if _, err := New(map[string]any{"url": "prometheus:9090"}, nil); err == nil || !strings.Contains(err.Error(), "url") {
		t.Errorf("New without scheme: %v", err)
	}
}

// Answers that no retry can change are permanent (a watch fails at once on
// them); the rest are left to the watch's consecutive-error limit. The
// server answers as Prometheus and the proxies in front of it do.
func TestPermanentAnswers(t *testing.T) {
	for _, tc := range []struct {
		status    int
		body      string
		permanent bool
	}{
		{http.StatusBadRequest, `{"status":"error","errorType":"bad_data","error":"1:14: parse error: unclosed left parenthesis"}`, true},
		{http.StatusForbidden, `forbidden`, true},
		{http.StatusNotFound, `404 page not found`, true},
		{http.StatusUnauthorized, ``, true},
		{http.StatusTooManyRequests, `slow down`, false},
		{http.StatusRequestTimeout, ``, false},
		{http.StatusUnprocessableEntity, `{"status":"error","errorType":"execution","error":"query processing would load too many samples"}`, false},
		{http.StatusServiceUnavailable, `{"status":"error","errorType":"timeout","error":"query timed out"}`, false},
		{http.StatusBadGateway, `bad gateway`, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		}))
		c, err := New(map[string]any{"url": srv.URL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Sample(context.Background(), activities.Query{Expr: "sum(up)"})
		srv.Close()
		if err == nil || activities.IsPermanent(err) != tc.permanent {
			t.Errorf("%d %s: err %v, permanent %v, want %v", tc.status, tc.body, err, activities.IsPermanent(err), tc.permanent)
		}
	}
	// Nobody listening may be a restart: not permanent.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, _ := New(map[string]any{"url": url}, nil)
	if _, err := c.Sample(context.Background(), activities.Query{Expr: "sum(up)"}); err == nil || activities.IsPermanent(err) {
		t.Errorf("connection refused: %v, want a transient error", err)
	}
}
