// Package httpconf holds the HTTP client settings the HTTP-based providers
// share (Prometheus, the HTTP probe): Prometheus' own HTTPClientConfig from
// github.com/prometheus/common/config, spelled as in prometheus.yml, so
// that a scrape job's credentials block can be copied under `http:` as is:
//
//	http:
//	  authorization: {credentials_file: /var/run/secrets/prom-token}
//	  basic_auth: {username: drillship, password_file: /etc/drillship/prom-pw}
//	  tls_config: {ca_file: /etc/ssl/prom-ca.pem, server_name: prometheus.internal}
//	  oauth2: {client_id: drillship, client_secret: "${PROM_OAUTH_SECRET}", token_url: https://idp/token}
//	  proxy_url: http://proxy:3128
//	  follow_redirects: false
//
// Secret values written inline must be ${NAME} references: the provider's
// DecodeConfig expands them in the worker, so none reaches a workflow's
// history. Files (*_file) are read by the worker on each request, so a
// rotated token is picked up without a restart.
package httpconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/common/config"

	"github.com/drillship/drillship/activities"
)

// Key is the setting, inside a provider's config, that holds the settings.
const Key = "http"

// Defaults says what a provider wants when the spec does not say.
type Defaults struct {
	// FollowRedirects: Prometheus' default is true; a probe must see a
	// redirect as the client would, so it says false.
	FollowRedirects bool
}

// Load checks the settings (already ${NAME}-expanded) against what is
// declared and what HTTPClientConfig.Validate accepts, and returns the
// config. It does no I/O: files named in it are read when the client is
// first used, by the worker, not by `validate` on a laptop that lacks them.
func Load(m map[string]any, d Defaults) (config.HTTPClientConfig, error) {
	cfg := config.DefaultHTTPClientConfig
	cfg.FollowRedirects = d.FollowRedirects
	if len(m) == 0 {
		cfg.ProxyFromEnvironment = true
		return cfg, nil
	}
	// Unknown keys are refused here, with the path as written: the library
	// decodes JSON leniently, and its strict YAML errors name Go types.
	for _, p := range activities.CheckConfig(Fields(), m) {
		if p.Unknown {
			return cfg, fmt.Errorf("%s.%s: %s", Key, p.Path, p.Msg)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", Key, err)
	}
	// JSON is YAML; the library's strict YAML decoding sets its defaults
	// and runs Validate.
	loaded, err := config.LoadHTTPConfig(string(b))
	if err != nil {
		return cfg, fmt.Errorf("%s: %s", Key, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	cfg = *loaded
	if _, set := m["follow_redirects"]; !set {
		cfg.FollowRedirects = d.FollowRedirects
	}
	// Without proxy settings the environment's HTTP(S)_PROXY applies, as it
	// did before these settings existed (the library's default is none).
	_, url := m["proxy_url"]
	_, env := m["proxy_from_environment"]
	if !url && !env {
		cfg.ProxyFromEnvironment = true
	}
	// Validate again: the library ran it before the changes above, and it
	// is what names a conflict between settings.
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", Key, err)
	}
	return cfg, nil
}

// BuildError is a client that could not be built from its settings: a CA
// or certificate file missing or not PEM. Asking again does not help.
type BuildError struct{ Err error }

func (e *BuildError) Error() string { return fmt.Sprintf("%s settings: %v", Key, e.Err) }
func (e *BuildError) Unwrap() error { return e.Err }

// Transport builds the round tripper of cfg on its first request, so that
// building a provider stays free of I/O. A failed build is retried on the
// next request (the file may appear), and returned as a *BuildError.
type Transport struct {
	Config config.HTTPClientConfig
	Name   string
	Opts   []config.HTTPClientOption

	mu sync.Mutex
	rt http.RoundTripper
}

// RoundTrip sends r through the configured round tripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	rt := t.rt
	if rt == nil {
		var err error
		rt, err = config.NewRoundTripperFromConfigWithContext(r.Context(), t.Config, t.Name, t.Opts...)
		if err != nil {
			t.mu.Unlock()
			if r.Body != nil {
				r.Body.Close()
			}
			return nil, &BuildError{Err: err}
		}
		t.rt = rt
	}
	t.mu.Unlock()
	return rt.RoundTrip(r)
}

// CloseIdleConnections lets http.Client close the built transport's idle
// connections.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	rt := t.rt
	t.mu.Unlock()
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// IsBuildError reports whether err says the settings could not be turned
// into a client.
func IsBuildError(err error) bool {
	var b *BuildError
	return errors.As(err, &b)
}
