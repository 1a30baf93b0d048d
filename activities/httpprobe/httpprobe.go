// Package httpprobe is the HTTP probe signals provider: metric "up" is 1
// when a GET or HEAD of a URL answers in time with an expected status (and,
// if asked, a body matching a pattern), 0 otherwise, with the reason.
package httpprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/config"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/httpconf"
)

// Name is the provider name in specs.
const Name = "http"

// Config is the provider's settings; every field is optional.
//
//	url: http://127.0.0.1:8080/healthz  # default URL when a query has no expr
//	method: GET                         # GET (default) or HEAD
//	timeout: 5s                         # per probe, default 5s
//	http:                               # Prometheus' HTTP client settings (package httpconf)
//	  basic_auth: {username: probe, password_file: /etc/drillship/probe-pw}
//	  tls_config: {ca_file: /etc/ssl/shop-ca.pem}
//	headers: {Host: shop.example}
type Config struct {
	URL     string            `json:"url,omitempty"`
	Method  string            `json:"method,omitempty"`
	Timeout string            `json:"timeout,omitempty"`
	HTTP    map[string]any    `json:"http,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// Provider returns the http probe provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:    Name,
		Declare: Declare,
		Signals: func(cfg map[string]any) (activities.Signals, error) { return New(cfg) },
	}
}

// Prober probes URLs.
type Prober struct {
	cfg     Config
	timeout time.Duration
	client  *http.Client
}

// New validates the settings; it does no I/O.
func New(cfg map[string]any) (*Prober, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	p := &Prober{cfg: c, timeout: 5 * time.Second}
	if c.URL != "" {
		if err := checkURL(c.URL); err != nil {
			return nil, fmt.Errorf("config: url: %w", err)
		}
	}
	switch strings.ToUpper(c.Method) {
	case "", http.MethodGet, http.MethodHead:
	default:
		return nil, fmt.Errorf("config: method %q: allowed are GET and HEAD", c.Method)
	}
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("config: timeout %q: want a positive duration such as 5s", c.Timeout)
		}
		p.timeout = d
	}
	// A probe sees the service as a client does: no redirects followed
	// unless asked, no connection kept between probes (a dead backend must
	// show at once).
	hc, err := httpconf.Load(c.HTTP, httpconf.Defaults{FollowRedirects: false})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	p.client = &http.Client{
		Transport: &httpconf.Transport{Config: hc, Name: "http-probe", Opts: []config.HTTPClientOption{config.WithKeepAlivesDisabled()}},
	}
	if !hc.FollowRedirects {
		p.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return p, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an absolute http or https URL", s)
	}
	return nil
}

// probe is one query's parameters, parsed.
type probe struct {
	url        string
	method     string
	timeout    time.Duration
	status     [][2]int
	maxLatency time.Duration
	body       *regexp.Regexp
}

// parse reads Expr (the URL, else settings url) and Params: expectStatus
// ("200-399" default, "200", "200,204,300-302"), maxLatency (a duration),
// bodyMatch (a Go regexp), method and timeout (override the settings).
func (p *Prober) parse(q activities.Query) (probe, error) {
	pr := probe{url: q.Expr, method: strings.ToUpper(p.cfg.Method), timeout: p.timeout, status: [][2]int{{200, 399}}}
	if q.Metric != "" && q.Metric != activities.MetricUp {
		return pr, fmt.Errorf("metric %q: only %q is offered", q.Metric, activities.MetricUp)
	}
	if pr.url == "" {
		pr.url = p.cfg.URL
	}
	if pr.url == "" {
		return pr, errors.New("expr (the URL to probe) is required when the settings have no url")
	}
	if err := checkURL(pr.url); err != nil {
		return pr, fmt.Errorf("expr: %w", err)
	}
	if pr.method == "" {
		pr.method = http.MethodGet
	}
	for k, v := range q.Params {
		var err error
		switch k {
		case "expectStatus":
			pr.status, err = parseStatus(v)
		case "maxLatency":
			pr.maxLatency, err = time.ParseDuration(v)
			if err == nil && pr.maxLatency <= 0 {
				err = errors.New("want a positive duration")
			}
		case "bodyMatch":
			pr.body, err = regexp.Compile(v)
		case "method":
			pr.method = strings.ToUpper(v)
			if pr.method != http.MethodGet && pr.method != http.MethodHead {
				err = errors.New("allowed are GET and HEAD")
			}
		case "timeout":
			pr.timeout, err = time.ParseDuration(v)
			if err == nil && pr.timeout <= 0 {
				err = errors.New("want a positive duration")
			}
		default:
			err = errors.New("unknown (allowed: expectStatus, maxLatency, bodyMatch, method, timeout)")
		}
		if err != nil {
			return pr, fmt.Errorf("params.%s %q: %w", k, v, err)
		}
	}
	if pr.body != nil && pr.method == http.MethodHead {
		return pr, errors.New("params.bodyMatch: a HEAD answer has no body; use method GET")
	}
	return pr, nil
}

func parseStatus(s string) ([][2]int, error) {
	var out [][2]int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
			return nil, fmt.Errorf("%q: want codes or ranges such as 200, 200-399, 200,204", part)
		}
		out = append(out, [2]int{a, b})
	}
	return out, nil
}

// maxBody bounds how much of an answer bodyMatch reads.
const maxBody = 1 << 20

// Sample probes once. A failed probe is a sample (value 0, Detail says why),
// not an error: errors are for queries that can never work.
func (p *Prober) Sample(ctx context.Context, q activities.Query) (activities.Sample, error) {
	pr, err := p.parse(q)
	if err != nil {
		return activities.Sample{}, activities.Permanent(fmt.Errorf("http probe: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, pr.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, pr.method, pr.url, nil)
	if err != nil {
		return activities.Sample{}, activities.Permanent(fmt.Errorf("http probe: %w", err))
	}
	for k, v := range p.cfg.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	start := time.Now()
	fail := func(format string, a ...any) (activities.Sample, error) {
		return activities.Sample{Value: 0, At: time.Now().UnixMilli(),
			Detail: fmt.Sprintf("%s %s: ", pr.method, pr.url) + fmt.Sprintf(format, a...)}, nil
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if httpconf.IsBuildError(err) {
			// Settings that cannot make a client say nothing of the
			// service: not a failed probe (value 0), which could roll
			// back a good release.
			return activities.Sample{}, activities.Permanent(fmt.Errorf("http probe: %w", err))
		}
		if ctx.Err() == context.DeadlineExceeded {
			return fail("no answer within %s", pr.timeout)
		}
		return fail("%v", err)
	}
	defer resp.Body.Close()
	var body []byte
	if pr.body != nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return fail("reading body: %v", err)
		}
	}
	latency := time.Since(start)
	if !statusOK(resp.StatusCode, pr.status) {
		return fail("status %d, expected %s", resp.StatusCode, formatStatus(pr.status))
	}
	if pr.maxLatency > 0 && latency > pr.maxLatency {
		return fail("answered in %s, over maxLatency %s", latency.Round(time.Millisecond), pr.maxLatency)
	}
	if pr.body != nil && !pr.body.Match(body) {
		return fail("body does not match %q", pr.body.String())
	}
	return activities.Sample{Value: 1, At: time.Now().UnixMilli(),
		Detail: fmt.Sprintf("%s %s: status %d in %s", pr.method, pr.url, resp.StatusCode, latency.Round(time.Millisecond))}, nil
}

func statusOK(code int, ranges [][2]int) bool {
	for _, r := range ranges {
		if code >= r[0] && code <= r[1] {
			return true
		}
	}
	return false
}

func formatStatus(ranges [][2]int) string {
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		if r[0] == r[1] {
			parts[i] = strconv.Itoa(r[0])
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r[0], r[1])
		}
	}
	return strings.Join(parts, ",")
}
