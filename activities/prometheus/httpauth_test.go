package prometheus

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/drillship/drillship/activities"
)

// tlsPrometheus is an HTTPS server answering the query API only to
// "Authorization: Bearer <want>", with the value 0.25. It returns the
// server, the path of its CA file and how many queries it answered.
func tlsPrometheus(t *testing.T, want *atomic.Value) (*httptest.Server, string, *atomic.Int64) {
	t.Helper()
	var answered atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+want.Load().(string) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/api/v1/query") {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		answered.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.25"]}]}}`))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusting client's handshake errors are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ca, &answered
}

func TestBearerTokenFileOverTLS(t *testing.T) {
	var want atomic.Value
	want.Store("tok-1")
	srv, ca, answered := tlsPrometheus(t, &want)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q := activities.Query{Metric: "error_rate", Expr: "x"}
	newClient := func(h map[string]any) *Client {
		t.Helper()
		c, err := New(map[string]any{"url": srv.URL, "http": h}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	c := newClient(map[string]any{"bearer_token_file": tokenFile, "tls_config": map[string]any{"ca_file": ca}})
	s, err := c.Sample(ctx, q)
	if err != nil || s.Value != 0.25 {
		t.Fatalf("with the token file and the CA: %+v, %v; want 0.25", s, err)
	}

	// The file is read on each request: a rotated token is used at once.
	want.Store("tok-2")
	if err := os.WriteFile(tokenFile, []byte("tok-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err = c.Sample(ctx, q); err != nil || s.Value != 0.25 {
		t.Fatalf("after rotating the token: %+v, %v; want 0.25", s, err)
	}
	if n := answered.Load(); n != 2 {
		t.Fatalf("server answered %d queries, want 2", n)
	}

	// A token the server refuses is permanent (401), not a canary nobody
	// can see counted as inconclusive.
	want.Store("tok-3")
	if _, err = c.Sample(ctx, q); err == nil || !activities.IsPermanent(err) {
		t.Fatalf("refused token: err %v, want a permanent error", err)
	}
	want.Store("tok-2")

	// Without the CA the server's certificate is not trusted.
	plain := newClient(map[string]any{"bearer_token_file": tokenFile})
	if _, err = plain.Sample(ctx, q); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: err %v, want a certificate error", err)
	}

	// A CA file that is not there is found when the worker first queries
	// (New does no I/O), and no retry fixes it.
	missing := newClient(map[string]any{"bearer_token_file": tokenFile, "tls_config": map[string]any{"ca_file": filepath.Join(t.TempDir(), "nope.pem")}})
	if _, err = missing.Sample(ctx, q); err == nil || !activities.IsPermanent(err) || !strings.Contains(err.Error(), "nope.pem") {
		t.Fatalf("missing CA file: err %v, want a permanent error naming the file", err)
	}
	if n := answered.Load(); n != 2 {
		t.Fatalf("server answered %d queries, want still 2", n)
	}
}

// The spec holds ${NAME}; the worker expands it when it builds the client.
func TestAuthorizationCredentialsReference(t *testing.T) {
	var want atomic.Value
	want.Store("from-env")
	srv, ca, _ := tlsPrometheus(t, &want)
	t.Setenv("DRILLSHIP_TEST_PROM_TOKEN", "from-env")
	c, err := New(map[string]any{"url": srv.URL, "http": map[string]any{
		"authorization": map[string]any{"credentials": "${DRILLSHIP_TEST_PROM_TOKEN}"},
		"tls_config":    map[string]any{"ca_file": ca},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.Sample(context.Background(), activities.Query{Metric: "m", Expr: "x"}); err != nil || s.Value != 0.25 {
		t.Fatalf("%+v, %v; want 0.25", s, err)
	}
}

func TestHTTPSettingsRefused(t *testing.T) {
	for _, tc := range []struct {
		http map[string]any
		want string
	}{
		{map[string]any{"bearer_token": "t0k", "bearer_token_file": "/t"}, "http: at most one of bearer_token & bearer_token_file"},
		{map[string]any{"basic_auth": map[string]any{"username": "u"}, "bearer_token_file": "/t"}, "http: at most one of basic_auth, oauth2, bearer_token & bearer_token_file"},
		{map[string]any{"tls_config": map[string]any{"ca_fle": "/ca.pem"}}, "http.tls_config.ca_fle: unknown setting (allowed: ca, ca_file,"},
		{map[string]any{"oauth2": map[string]any{"client_id": "c"}}, "http: oauth2 token_url must be configured"},
		{map[string]any{"tls_config": map[string]any{"min_version": "TLS9"}}, "TLS9"},
		{map[string]any{"follow_redirects": "yes"}, "http:"},
		{map[string]any{"proxy_url": "http://p:3128", "proxy_from_environment": true}, "http: if proxy_from_environment is configured, proxy_url must not be configured"},
	} {
		_, err := New(map[string]any{"url": "http://p:9090", "http": tc.http}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("http %v: err %v, want %q", tc.http, err, tc.want)
		}
	}
}
