package localenv

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"sync"
	"time"
)

// route picks where one user request goes: a region by region weight only
// (like weighted DNS records without health checks, so an outage hurts users
// until someone moves the weights), then a version by version weight among
// those running there, then an instance, skipping unhealthy ones only when a
// healthy sibling exists.
func (e *Env) route() (region, version string, in *instance, why string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	region = pickWeighted(e.regions, e.regionW)
	if region == "" {
		return noneLabel, noneLabel, nil, "no region has weight"
	}
	var versions []string
	for v, ins := range e.instances[region] {
		if len(ins) > 0 && e.versionW[v] > 0 {
			versions = append(versions, v)
		}
	}
	sort.Strings(versions)
	version = pickWeighted(versions, e.versionW)
	if version == "" {
		return region, noneLabel, nil, fmt.Sprintf("no running version with weight in region %s", region)
	}
	ins := e.instances[region][version]
	pool := ins
	if len(ins) > 1 {
		var healthy []*instance
		for _, c := range ins {
			if c.healthy.Load() {
				healthy = append(healthy, c)
			}
		}
		if len(healthy) > 0 {
			pool = healthy
		}
	}
	return region, version, pool[rand.IntN(len(pool))], ""
}

// pickWeighted draws one of names with probability weight/sum; "" when no
// name has weight. names must be in a stable order.
func pickWeighted(names []string, w map[string]int) string {
	total := 0
	for _, n := range names {
		total += max(w[n], 0)
	}
	if total == 0 {
		return ""
	}
	x := rand.IntN(total)
	for _, n := range names {
		x -= max(w[n], 0)
		if x < 0 {
			return n
		}
	}
	return ""
}

// statusWriter remembers the status code the proxy answered with.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// serveFront forwards one user request for real over HTTP and records what
// the user saw.
func (e *Env) serveFront(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	region, version, in, why := e.route()
	if in == nil {
		http.Error(w, why, http.StatusServiceUnavailable)
		e.metrics.record(region, version, http.StatusServiceUnavailable, time.Since(start), time.Now())
		return
	}
	target, err := url.Parse(in.url())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		e.metrics.record(region, version, http.StatusInternalServerError, time.Since(start), time.Now())
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: e.proxyTransport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, fmt.Sprintf("bad gateway: %s/%s: %v", region, version, err), http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(sw, r)
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	e.metrics.record(region, version, sw.code, time.Since(start), time.Now())
}

// healthLoop checks every instance's /healthz each health interval.
func (e *Env) healthLoop(ctx context.Context) {
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.checkHealth(ctx)
		}
	}
}

func (e *Env) checkHealth(ctx context.Context) {
	var wg sync.WaitGroup
	for _, in := range e.instanceList(nil) {
		wg.Go(func() {
			ok, _ := e.probe(ctx, in, healthTimeout)
			if was := in.healthy.Swap(ok); was && !ok {
				e.log.Warn("instance unhealthy", "region", in.region, "version", in.version)
			} else if !was && ok {
				e.log.Debug("instance healthy", "region", in.region, "version", in.version)
			}
		})
	}
	wg.Wait()
}

// probe asks one instance's /healthz; ok is a 200 answer.
func (e *Env) probe(ctx context.Context, in *instance, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.url()+"/healthz", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := e.probeClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, resp.Status
	}
	return true, ""
}

// loadLoop sends RPS x multiplier requests per second to the proxy. Ticks
// accumulate fractional requests so that low rates are exact over time; at
// most maxInflight requests are outstanding, the rest are dropped.
func (e *Env) loadLoop(ctx context.Context) {
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	sem := make(chan struct{}, maxInflight)
	var wg sync.WaitGroup
	defer wg.Wait()
	owed := 0.0
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.mu.RLock()
			mult := e.loadMult
			e.mu.RUnlock()
			rate := float64(e.rps) * mult
			// A stalled loop must not catch up in one burst: at most one
			// second of load is owed.
			owed = min(owed+rate*now.Sub(last).Seconds(), max(rate, 1))
			last = now
			for ; owed >= 1; owed-- {
				select {
				case sem <- struct{}{}:
				default:
					continue // saturated: shed this request
				}
				wg.Go(func() {
					defer func() { <-sem }()
					e.userRequest(ctx)
				})
			}
		}
	}
}

func (e *Env) userRequest(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.frontURL+"/", nil)
	if err != nil {
		return
	}
	resp, err := e.loadClient.Do(req)
	if err != nil {
		return
	}
	// Drain so the connection is reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
