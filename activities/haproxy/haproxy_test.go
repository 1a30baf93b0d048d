package haproxy

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/lab"
)

func labClient(t *testing.T, l *lab.Lab) *Client {
	t.Helper()
	c, err := New(l.Settings()["haproxy"])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// split sends n requests through the frontend and counts answers by version.
func split(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	got := map[string]int{}
	for i := 0; i < n; i++ {
		resp, err := client.Get(url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got[resp.Header.Get("X-Version")]++
	}
	return got
}

func TestWeightsOnRealHAProxy(t *testing.T) {
	l := lab.Start(t, lab.Options{Parts: lab.PartHAProxy})
	c := labClient(t, l)
	ctx := context.Background()

	w, err := c.Weights(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w["v1"] != 100 || w["v2"] != 0 {
		t.Fatalf("initial weights %v, want v1=100 v2=0", w)
	}

	if err := c.SetWeights(ctx, activities.Weights{"v1": 75, "v2": 25}); err != nil {
		t.Fatal(err)
	}
	// Read back from HAProxy itself, not through the client.
	out, err := c.API.Do(ctx, "show servers state web")
	if err != nil {
		t.Fatal(err)
	}
	states, err := parseServersState("show servers state web", out)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]ServerState{}
	for _, s := range states {
		byName[s.Name] = s
	}
	if byName["web-v1"].Weight != 75 || byName["web-v2"].Weight != 25 {
		t.Fatalf("show servers state: web-v1 weight %d, web-v2 weight %d; want 75, 25\n%s", byName["web-v1"].Weight, byName["web-v2"].Weight, out)
	}
	if byName["web-v2"].OpState != 2 {
		t.Fatalf("web-v2 op state %d, want 2 (running)", byName["web-v2"].OpState)
	}

	got := split(t, l.HAProxy.Frontend, 400)
	if got["v1"]+got["v2"] != 400 {
		t.Fatalf("answers by version %v, want 400 from v1 and v2", got)
	}
	if share := float64(got["v2"]) / 400; share < 0.20 || share > 0.30 {
		t.Fatalf("v2 got %.2f of requests at weight 25/100 (%v)", share, got)
	}

	// Weight 0 drains v2: no new requests reach it.
	if err := c.SetWeights(ctx, activities.Weights{"v2": 0}); err != nil {
		t.Fatal(err)
	}
	if w, _ := c.Weights(ctx); w["v1"] != 75 || w["v2"] != 0 {
		t.Fatalf("after draining v2: %v, want v1=75 (kept) v2=0", w)
	}
	if got := split(t, l.HAProxy.Frontend, 50); got["v1"] != 50 {
		t.Fatalf("after draining v2: %v, want all 50 on v1", got)
	}

	// Setting what is already set changes nothing and succeeds.
	if err := c.SetWeights(ctx, activities.Weights{"v1": 75, "v2": 0}); err != nil {
		t.Fatal(err)
	}

	err = c.SetWeights(ctx, activities.Weights{"v3": 10})
	if !activities.IsPermanent(err) || !strings.Contains(err.Error(), `"v3"`) {
		t.Fatalf("unknown backend: err = %v, want a permanent error naming v3", err)
	}
	err = c.SetWeights(ctx, activities.Weights{"v1": 300})
	if !activities.IsPermanent(err) || !strings.Contains(err.Error(), "0..256") {
		t.Fatalf("weight 300: err = %v, want a permanent error naming 0..256", err)
	}
}

func TestUpFromHAProxyHealthChecks(t *testing.T) {
	l := lab.Start(t, lab.Options{Parts: lab.PartHAProxy})
	c := labClient(t, l)
	ctx := context.Background()
	q := activities.Query{Metric: activities.MetricUp, Scope: map[string]string{"version": "v2"}}

	// HAProxy checks every 500ms and needs 2 failures to mark a server down.
	waitValue := func(want float64) activities.Sample {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s, err := c.Sample(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if s.Value == want {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("up = %v (%s), want %v", s.Value, s.Detail, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	before := time.Now().UnixMilli()
	s := waitValue(1)
	if !strings.Contains(s.Detail, "status UP") || s.At < before {
		t.Fatalf("healthy sample %+v, want status UP and At >= %d", s, before)
	}
	l.Service("v2").SetDown(true)
	s = waitValue(0)
	if !strings.Contains(s.Detail, "web/web-v2: status DOWN") || !strings.Contains(s.Detail, "L7STS") {
		t.Fatalf("down sample detail %q, want status DOWN and check L7STS", s.Detail)
	}
	l.Service("v2").SetDown(false)
	waitValue(1)

	if _, err := c.Sample(ctx, activities.Query{Metric: "error_rate", Scope: q.Scope}); !activities.IsPermanent(err) {
		t.Fatalf("metric error_rate: err = %v, want permanent", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"backend": "web", "servers": map[string]any{"v1": "a"}}, "socket"},
		{map[string]any{"socket": "/s", "address": "h:1", "backend": "web", "servers": map[string]any{"v1": "a"}}, "not both"},
		{map[string]any{"socket": "/s", "servers": map[string]any{"v1": "a"}}, "backend"},
		{map[string]any{"socket": "/s", "backend": "web"}, "servers is required"},
		{map[string]any{"socket": "/s", "backend": "web", "servers": map[string]any{"v1": "a b"}}, "servers.v1"},
		{map[string]any{"socket": "/s", "backend": "web", "servers": map[string]any{"v1": "a"}, "timeout": "soon"}, "timeout"},
		{map[string]any{"socket": "/s", "backend": "web", "servers": map[string]any{"v1": "a"}, "sockt": "x"}, "sockt"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v) = %v, want error mentioning %q", tc.cfg, err, tc.want)
		}
	}
	c, err := New(map[string]any{"address": "127.0.0.1:9999", "backend": "web", "servers": map[string]any{"v1": "web-v1"}, "timeout": "2s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Network != "tcp" || c.API.Address != "127.0.0.1:9999" || c.API.Timeout != 2*time.Second {
		t.Fatalf("api %+v", c.API)
	}
}

func TestParseServersState(t *testing.T) {
	out := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 web 1 web-v1 127.0.0.1 2 0 80 100 12 6 3 4 6 0 0 0 - 8080 - 0 0 - - 0\n"
	st, err := parseServersState("show servers state web", out)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Name != "web-v1" || st[0].Weight != 80 || st[0].InitWeight != 100 || st[0].OpState != 2 {
		t.Fatalf("parsed %+v", st)
	}
	_, err = parseServersState("show servers state nope", "Can't find backend.\n")
	if !activities.IsPermanent(err) || !strings.Contains(err.Error(), "Can't find backend") {
		t.Fatalf("err = %v", err)
	}
}
