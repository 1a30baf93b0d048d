package httpprobe

import (
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

// basicAuthTLS is an HTTPS service that answers /healthz 200 only to basic
// auth probe:<pw>, and /moved with a redirect to /healthz. It returns the
// server, the path of its CA file and how many requests passed the
// credentials check.
func basicAuthTLS(t *testing.T, pw string) (*httptest.Server, string, *atomic.Int64) {
	t.Helper()
	var authed atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "probe" || p != pw {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		authed.Add(1)
		switch r.URL.Path {
		case "/healthz":
			_, _ = w.Write([]byte("ok"))
		case "/moved":
			http.Redirect(w, r, "/healthz", http.StatusFound)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // an untrusting client's handshake errors are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ca, &authed
}

func TestBasicAuthPasswordFileOverTLS(t *testing.T) {
	srv, ca, authed := basicAuthTLS(t, "s3cret")
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	newProber := func(h map[string]any) *Prober {
		t.Helper()
		p, err := New(map[string]any{"url": srv.URL + "/healthz", "http": h})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tlsCA := map[string]any{"ca_file": ca}

	p := newProber(map[string]any{"basic_auth": map[string]any{"username": "probe", "password_file": pwFile}, "tls_config": tlsCA})
	if s := sample(t, p, activities.Query{}); s.Value != 1 {
		t.Fatalf("with the password file and the CA: %+v, want up", s)
	}
	// The default stays a client's view: a redirect is an answer (302 is
	// in 200-399), not followed.
	if s := sample(t, p, activities.Query{Expr: srv.URL + "/moved", Params: map[string]string{"expectStatus": "200"}}); s.Value != 0 || !strings.Contains(s.Detail, "status 302") {
		t.Fatalf("redirect without follow_redirects: %+v, want down with status 302", s)
	}
	if n := authed.Load(); n != 2 {
		t.Fatalf("server saw %d authenticated requests, want 2", n)
	}

	follow := newProber(map[string]any{"basic_auth": map[string]any{"username": "probe", "password_file": pwFile}, "tls_config": tlsCA, "follow_redirects": true})
	if s := sample(t, follow, activities.Query{Expr: srv.URL + "/moved", Params: map[string]string{"expectStatus": "200"}}); s.Value != 1 {
		t.Fatalf("redirect with follow_redirects: %+v, want up", s)
	}
	if n := authed.Load(); n != 4 {
		t.Fatalf("server saw %d authenticated requests, want 4 (the redirect and its target)", n)
	}

	// A wrong password is what the service says: down, 401.
	if err := os.WriteFile(pwFile, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := sample(t, p, activities.Query{}); s.Value != 0 || !strings.Contains(s.Detail, "status 401") {
		t.Fatalf("wrong password: %+v, want down with status 401", s)
	}

	// Without the CA the certificate is not trusted: down, saying why.
	untrusting := newProber(map[string]any{"basic_auth": map[string]any{"username": "probe", "password_file": pwFile}})
	if s := sample(t, untrusting, activities.Query{}); s.Value != 0 || !strings.Contains(s.Detail, "certificate") {
		t.Fatalf("without the CA: %+v, want down with a certificate error", s)
	}

	// A CA file that is not there says nothing of the service: a permanent
	// error, not a down sample that could roll back a good release.
	missing := newProber(map[string]any{"tls_config": map[string]any{"ca_file": filepath.Join(t.TempDir(), "nope.pem")}})
	_, err := missing.Sample(t.Context(), activities.Query{})
	if err == nil || !activities.IsPermanent(err) || !strings.Contains(err.Error(), "nope.pem") {
		t.Fatalf("missing CA file: err %v, want a permanent error naming the file", err)
	}
}

// A password given as ${NAME} is expanded in the worker.
func TestBasicAuthPasswordReference(t *testing.T) {
	srv, ca, _ := basicAuthTLS(t, "from-env")
	t.Setenv("DRILLSHIP_TEST_PROBE_PW", "from-env")
	p, err := New(map[string]any{"url": srv.URL + "/healthz", "http": map[string]any{
		"basic_auth": map[string]any{"username": "probe", "password": "${DRILLSHIP_TEST_PROBE_PW}"},
		"tls_config": map[string]any{"ca_file": ca},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if s := sample(t, p, activities.Query{}); s.Value != 1 {
		t.Fatalf("%+v, want up", s)
	}
}
