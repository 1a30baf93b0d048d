// Package prometheus is the Prometheus signals provider: a query's Expr is
// PromQL, evaluated by the Prometheus HTTP API at now (or over a range), and
// the sample's time is the one Prometheus gives.
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/httpconf"
)

// Name is the provider name in specs.
const Name = "prometheus"

// Config is the provider's settings.
//
//	url: http://prometheus:9090   # required
//	timeout: 10s                  # per query, default 10s
//	http:                         # Prometheus' HTTP client settings (package httpconf)
//	  authorization: {credentials_file: /var/run/secrets/prom-token}
//	  tls_config: {ca_file: /etc/ssl/prom-ca.pem}
//	headers: {X-Scope-OrgID: shop} # extra headers (credentials belong under http)
type Config struct {
	URL     string            `json:"url"`
	Timeout string            `json:"timeout,omitempty"`
	HTTP    map[string]any    `json:"http,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// Provider returns the prometheus provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:    Name,
		Declare: Declare,
		Signals: func(cfg map[string]any) (activities.Signals, error) { return New(cfg, nil) },
	}
}

// Client queries one Prometheus server.
type Client struct {
	API     v1.API
	timeout time.Duration
	log     *slog.Logger
}

// New validates the settings and builds the API client; it does no I/O.
func New(cfg map[string]any, logger *slog.Logger) (*Client, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		return nil, fmt.Errorf("config: url %q: want the http(s) address of Prometheus, such as http://prometheus:9090", c.URL)
	}
	timeout := 10 * time.Second
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("config: timeout %q: want a positive duration such as 10s", c.Timeout)
		}
		timeout = d
	}
	hc, err := httpconf.Load(c.HTTP, httpconf.Defaults{FollowRedirects: true})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var rt http.RoundTripper = &httpconf.Transport{Config: hc, Name: Name}
	if len(c.Headers) > 0 {
		rt = headerRoundTripper{headers: c.Headers, next: rt}
	}
	client, err := api.NewClient(api.Config{Address: c.URL, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("config: url %q: %w", c.URL, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Client{API: v1.NewAPI(client), timeout: timeout, log: logger}, nil
}

type headerRoundTripper struct {
	headers map[string]string
	next    http.RoundTripper
}

func (h headerRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.headers {
		r.Header.Set(k, v)
	}
	return h.next.RoundTrip(r)
}

// query is a Query's parameters, parsed.
type query struct {
	expr   string
	rng    bool
	window time.Duration
	step   time.Duration
	agg    string
}

// parse reads Expr (PromQL) and Params: mode (instant, the default, or
// range), and for range: step (default window/60, at least 1s) and agg (last,
// the default, or max). The range is the Query's Window (default 5m).
func parse(q activities.Query) (query, error) {
	p := query{expr: strings.TrimSpace(q.Expr), window: q.Window, agg: "last"}
	if p.expr == "" {
		return p, errors.New("expr (a PromQL expression) is required")
	}
	if strings.Contains(p.expr, "{{") {
		// {{version}}, {{region}}, {{window}}: the canary and the baseline
		// are the same expression over different scopes.
		e, err := Expr(p.expr, q)
		if err != nil {
			return p, err
		}
		p.expr = e
	}
	if p.window <= 0 {
		p.window = 5 * time.Minute
	}
	for k, v := range q.Params {
		switch k {
		case "mode":
			switch v {
			case "instant":
			case "range":
				p.rng = true
			default:
				return p, fmt.Errorf("params.mode %q: allowed are instant and range", v)
			}
		case "step":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return p, fmt.Errorf("params.step %q: want a positive duration such as 15s", v)
			}
			p.step = d
		case "agg":
			if v != "last" && v != "max" {
				return p, fmt.Errorf("params.agg %q: allowed are last and max", v)
			}
			p.agg = v
		default:
			return p, fmt.Errorf("params.%s: unknown (allowed: mode, step, agg)", k)
		}
	}
	if !p.rng && (q.Params["step"] != "" || q.Params["agg"] != "") {
		return p, errors.New("params.step and params.agg need params.mode range")
	}
	if p.step == 0 {
		p.step = max(p.window/60, time.Second)
	}
	return p, nil
}

// Sample evaluates the query. No series is NoData; so is NaN (a ratio of
// zero requests) and ±Inf, which say nothing about an SLO. More than one
// series is a permanent error: the expression must aggregate.
func (c *Client) Sample(ctx context.Context, q activities.Query) (activities.Sample, error) {
	p, err := parse(q)
	if err != nil {
		return activities.Sample{}, activities.Permanent(fmt.Errorf("prometheus: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	now := time.Now()
	var (
		val      model.Value
		warnings v1.Warnings
	)
	if p.rng {
		val, warnings, err = c.API.QueryRange(ctx, p.expr, v1.Range{Start: now.Add(-p.window), End: now, Step: p.step})
	} else {
		val, warnings, err = c.API.Query(ctx, p.expr, now)
	}
	for _, w := range warnings {
		c.log.Warn("prometheus: query warning", "expr", p.expr, "warning", w)
	}
	if err != nil {
		err = fmt.Errorf("prometheus: expr %q: %w", p.expr, err)
		if permanent(err) || httpconf.IsBuildError(err) {
			return activities.Sample{}, activities.Permanent(err)
		}
		return activities.Sample{}, err
	}
	return c.sample(p, val, now)
}

// permanent reports an answer that asking again cannot change (so does a
// client that cannot be built from its http settings): bad_data (a
// PromQL typo, a bad parameter), or a 4xx other than 408 and 429 (a wrong
// URL path, credentials refused). A watch fails at once on these rather
// than counting a canary nobody can see as merely inconclusive. Everything
// else (5xx, timeouts, refused connections, a query too heavy this minute)
// may pass and is left to the watch's consecutive-error limit.
func permanent(err error) bool {
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.Type {
	case v1.ErrBadData:
		return true
	case v1.ErrClient:
		var code int
		if _, scanErr := fmt.Sscanf(apiErr.Msg, "client error: %d", &code); scanErr != nil {
			return false
		}
		return code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
	}
	return false
}

func (c *Client) sample(p query, val model.Value, now time.Time) (activities.Sample, error) {
	noData := func(detail string) (activities.Sample, error) {
		return activities.Sample{NoData: true, At: now.UnixMilli(), Detail: detail}, nil
	}
	tooMany := func(n int) (activities.Sample, error) {
		return activities.Sample{}, activities.Permanent(fmt.Errorf("prometheus: expr %q returned %d series; aggregate it (sum, max, ...) to one", p.expr, n))
	}
	var (
		v  model.SampleValue
		at model.Time
	)
	switch r := val.(type) {
	case model.Vector:
		if len(r) == 0 {
			return noData("no series")
		}
		if len(r) > 1 {
			return tooMany(len(r))
		}
		v, at = r[0].Value, r[0].Timestamp
	case *model.Scalar:
		v, at = r.Value, r.Timestamp
	case model.Matrix:
		if len(r) == 0 || len(r[0].Values) == 0 {
			return noData("no series in range")
		}
		if len(r) > 1 {
			return tooMany(len(r))
		}
		pts := r[0].Values
		last := pts[len(pts)-1]
		v, at = last.Value, last.Timestamp
		if p.agg == "max" {
			for _, pt := range pts {
				if !math.IsNaN(float64(pt.Value)) && (math.IsNaN(float64(v)) || pt.Value > v) {
					v, at = pt.Value, pt.Timestamp
				}
			}
		}
	default:
		return activities.Sample{}, activities.Permanent(fmt.Errorf("prometheus: expr %q returned a %s; want a vector or scalar", p.expr, val.Type()))
	}
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		s, _ := noData(fmt.Sprintf("value %v", f))
		s.At = at.Time().UnixMilli()
		return s, nil
	}
	detail := "instant"
	if p.rng {
		detail = fmt.Sprintf("%s over %s step %s", p.agg, p.window, p.step)
	}
	return activities.Sample{Value: f, At: at.Time().UnixMilli(), Detail: detail}, nil
}
