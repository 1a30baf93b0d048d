package httpconf

import (
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
)

// Offline validation (the declaration) refuses secrets written inline
// under http:, wherever they sit, and takes references and files.
func TestSecretsUnderHTTPMustBeReferences(t *testing.T) {
	fields := []activities.Field{Field("test")}
	for _, tc := range []struct {
		http map[string]any
		bad  string // the path refused, "" if none
	}{
		{map[string]any{"bearer_token": "abc123"}, "http.bearer_token"},
		{map[string]any{"bearer_token": "${PROM_TOKEN}"}, ""},
		{map[string]any{"bearer_token_file": "/var/run/secrets/token"}, ""},
		{map[string]any{"authorization": map[string]any{"credentials": "abc123"}}, "http.authorization.credentials"},
		{map[string]any{"basic_auth": map[string]any{"username": "u", "password": "hunter2"}}, "http.basic_auth.password"},
		{map[string]any{"basic_auth": map[string]any{"username": "u", "password_file": "/etc/pw"}}, ""},
		{map[string]any{"oauth2": map[string]any{"client_id": "c", "client_secret": "s", "token_url": "https://idp/token"}}, "http.oauth2.client_secret"},
		{map[string]any{"oauth2": map[string]any{"client_id": "c", "client_secret": "${S}", "token_url": "https://idp/token"}}, ""},
		{map[string]any{"tls_config": map[string]any{"key": "-----BEGIN PRIVATE KEY-----"}}, "http.tls_config.key"},
		{map[string]any{"proxy_url": "http://u:pw@proxy:3128"}, "http.proxy_url"},
		{map[string]any{"proxy_url": "http://u:${PROXY_PW}@proxy:3128"}, ""},
	} {
		ps := activities.CheckConfig(fields, map[string]any{Key: tc.http})
		var got []string
		for _, p := range ps {
			got = append(got, p.Path+": "+p.Msg)
		}
		switch {
		case tc.bad == "" && len(ps) > 0:
			t.Errorf("%v refused: %v", tc.http, got)
		case tc.bad != "" && (len(ps) != 1 || ps[0].Path != tc.bad || !strings.Contains(ps[0].Msg, "${NAME}")):
			t.Errorf("%v: problems %v, want one at %s asking for a ${NAME} reference", tc.http, got, tc.bad)
		}
	}
}

// Every declared setting is one the library decodes, and nothing the
// declaration leaves out is accepted.
func TestDeclaredIsAccepted(t *testing.T) {
	all := map[string]any{
		"authorization":    map[string]any{"type": "Bearer", "credentials_file": "/t"},
		"tls_config":       map[string]any{"ca_file": "/ca", "cert_file": "/c", "key_file": "/k", "server_name": "s", "insecure_skip_verify": false, "min_version": "TLS12", "max_version": "TLS13"},
		"proxy_url":        "http://proxy:3128",
		"no_proxy":         "localhost",
		"enable_http2":     false,
		"follow_redirects": true,
	}
	if _, err := Load(all, Defaults{}); err != nil {
		t.Fatalf("declared settings refused: %v", err)
	}
	for _, m := range []map[string]any{
		{"http_headers": map[string]any{"X": map[string]any{"values": []any{"1"}}}},
		{"authorization": map[string]any{"credentials_ref": "r"}},
	} {
		if _, err := Load(m, Defaults{}); err == nil || !strings.Contains(err.Error(), "unknown setting") {
			t.Errorf("%v: err %v, want unknown setting", m, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := Load(nil, Defaults{FollowRedirects: false})
	if err != nil {
		t.Fatal(err)
	}
	if c.FollowRedirects || !c.ProxyFromEnvironment || !c.EnableHTTP2 {
		t.Fatalf("defaults: follow %v proxyEnv %v http2 %v; want false true true", c.FollowRedirects, c.ProxyFromEnvironment, c.EnableHTTP2)
	}
	c, err = Load(map[string]any{"proxy_url": "http://proxy:3128"}, Defaults{FollowRedirects: true})
	if err != nil {
		t.Fatal(err)
	}
	if !c.FollowRedirects || c.ProxyFromEnvironment || c.ProxyURL.String() != "http://proxy:3128" {
		t.Fatalf("proxy_url: follow %v proxyEnv %v url %v", c.FollowRedirects, c.ProxyFromEnvironment, c.ProxyURL)
	}
}
