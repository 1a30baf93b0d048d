package localenv

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"
)

// Options configure a local environment. Zero values take the defaults.
type Options struct {
	Service string        // default "web"
	Regions []string      // default {"east", "west"}
	Stable  string        // initial stable version, default "v1"
	RPS     int           // load generator requests/second, default 50; 0 = default; negative = no load
	Bucket  time.Duration // metric resolution, default 100ms
	Logger  *slog.Logger
}

// Timing constants. The health interval is short so that a region outage is
// seen by the proxy within a quarter second; the dial timeout is short so
// that a dead region fails users fast instead of hanging them.
const (
	healthInterval = 250 * time.Millisecond
	healthTimeout  = 200 * time.Millisecond
	dialTimeout    = 100 * time.Millisecond
	probeTimeout   = time.Second
	// history is how far back windowed metric queries can look.
	history = 10 * time.Minute
	// maxInflight bounds the load generator so that a slow environment
	// cannot pile up goroutines.
	maxInflight = 256
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Env is a running local environment: the sample service's instances, the
// weighted proxy in front of them, a load generator, metrics and the control
// API. All of its servers listen on 127.0.0.1.
type Env struct {
	service string
	regions []string
	rps     int
	log     *slog.Logger
	metrics *metrics

	mu        sync.RWMutex
	regionW   map[string]int
	versionW  map[string]int
	stable    string
	artifacts []string                          // oldest first
	promoted  map[string]int64                  // version -> order of its latest promotion (pruning keeps the rollback target)
	promotes  int64                             // promotions so far, the initial stable counting as the first
	instances map[string]map[string][]*instance // region -> version -> instances
	faults    []*fault                          // every fault ever injected, in order
	shed      map[string]bool
	loadMult  float64
	incidents incidentBook // the `local` incident provider's records

	front, control       *http.Server
	frontURL, controlURL string
	proxyTransport       *http.Transport
	probeClient          *http.Client
	loadClient           *http.Client
	errLog               *log.Logger

	cancel    context.CancelFunc
	wg        sync.WaitGroup // background loops and the servers' Serve calls
	closeOnce sync.Once
	closeErr  error
}

// Start starts a local environment with the stable version running in every
// region. ctx bounds start-up only; Close stops everything.
func Start(ctx context.Context, o Options) (*Env, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e := &Env{
		service:   o.Service,
		regions:   o.Regions,
		rps:       o.RPS,
		log:       o.Logger,
		metrics:   newMetrics(o.Bucket),
		regionW:   map[string]int{},
		versionW:  map[string]int{o.Stable: 100},
		stable:    o.Stable,
		promoted:  map[string]int64{o.Stable: 1},
		promotes:  1,
		instances: map[string]map[string][]*instance{},
		shed:      map[string]bool{},
		loadMult:  1,
	}
	e.errLog = slog.NewLogLogger(e.log.Handler(), slog.LevelDebug)
	for _, r := range e.regions {
		// Start even: like two weighted DNS records of equal weight.
		e.regionW[r] = 100 / len(e.regions)
		e.instances[r] = map[string][]*instance{}
	}
	e.proxyTransport = &http.Transport{
		DialContext:           (&net.Dialer{Timeout: dialTimeout}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 90 * time.Second,
	}
	e.probeClient = &http.Client{Transport: &http.Transport{
		DialContext:       (&net.Dialer{Timeout: dialTimeout}).DialContext,
		DisableKeepAlives: true, // a probe must see a fresh connection, as a user would
	}}
	e.loadClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}

	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	e.mu.Lock()
	_, err := e.deployLocked(o.Stable)
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if e.front, e.frontURL, err = e.serve("front proxy", http.HandlerFunc(e.serveFront)); err != nil {
		return nil, err
	}
	if e.control, e.controlURL, err = e.serve("control API", e.controlHandler()); err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.checkHealth(loopCtx) // first round before users arrive
	e.wg.Go(func() { e.healthLoop(loopCtx) })
	if e.rps > 0 {
		e.wg.Go(func() { e.loadLoop(loopCtx) })
	}
	ok = true
	e.log.Info("local environment started", "front", e.frontURL, "control", e.controlURL,
		"regions", e.regions, "stable", o.Stable, "rps", max(e.rps, 0))
	return e, nil
}

func (o *Options) defaults() error {
	if o.Service == "" {
		o.Service = "web"
	}
	if len(o.Regions) == 0 {
		o.Regions = []string{"east", "west"}
	}
	if o.Stable == "" {
		o.Stable = "v1"
	}
	if o.RPS == 0 {
		o.RPS = 50
	}
	if o.Bucket == 0 {
		o.Bucket = 100 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !nameRE.MatchString(o.Service) {
		return fmt.Errorf("localenv: service %q: allowed are letters, digits, '.', '_', '-' (1-63)", o.Service)
	}
	if !nameRE.MatchString(o.Stable) {
		return fmt.Errorf("localenv: stable %q: allowed are letters, digits, '.', '_', '-' (1-63)", o.Stable)
	}
	seen := map[string]bool{}
	for _, r := range o.Regions {
		if !nameRE.MatchString(r) || r == noneLabel {
			return fmt.Errorf("localenv: region %q: allowed are letters, digits, '.', '_', '-' (1-63), not %q", r, noneLabel)
		}
		if seen[r] {
			return fmt.Errorf("localenv: region %q: listed twice", r)
		}
		seen[r] = true
	}
	o.Regions = slices.Clone(o.Regions)
	if o.Bucket < time.Millisecond || o.Bucket > time.Minute {
		return fmt.Errorf("localenv: bucket %s: allowed 1ms..1m", o.Bucket)
	}
	return nil
}

// serve starts an HTTP server for h on a fresh loopback port.
func (e *Env) serve(what string, h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("localenv: %s: listen: %w", what, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: e.errLog}
	e.wg.Go(func() { _ = srv.Serve(ln) })
	return srv, "http://" + ln.Addr().String(), nil
}

// URL is the control API's base URL.
func (e *Env) URL() string { return e.controlURL }

// FrontURL is the weighted proxy that users (and the load generator) hit.
func (e *Env) FrontURL() string { return e.frontURL }

// SetLoad scales the load generator: 2.0 is twice the normal rate, 0 stops
// it. Negative values are taken as 0.
func (e *Env) SetLoad(multiplier float64) {
	e.mu.Lock()
	e.loadMult = max(multiplier, 0)
	e.mu.Unlock()
	e.log.Info("load multiplier set", "multiplier", max(multiplier, 0))
}

// Summary lists what `drillship dev` prints: where everything listens.
func (e *Env) Summary() []string {
	lines := []string{
		fmt.Sprintf("front proxy (users): %s", e.frontURL),
		fmt.Sprintf("control API:         %s", e.controlURL),
		fmt.Sprintf("metrics:             %s/metrics", e.controlURL),
	}
	for _, in := range e.instanceList(nil) {
		lines = append(lines, fmt.Sprintf("instance %s/%s: %s", in.region, in.version, in.url()))
	}
	return lines
}

// Close stops the load generator, the health checks and every server. It
// returns once their goroutines are gone; calling it again is fine.
func (e *Env) Close() error {
	e.closeOnce.Do(func() {
		if e.cancel != nil {
			e.cancel()
		}
		var errs []error
		for _, s := range []*http.Server{e.front, e.control} {
			if s != nil {
				errs = append(errs, s.Close())
			}
		}
		e.mu.Lock()
		for _, byVersion := range e.instances {
			for _, ins := range byVersion {
				for _, in := range ins {
					in.stop()
				}
			}
		}
		e.mu.Unlock()
		e.wg.Wait()
		for _, c := range []*http.Client{e.probeClient, e.loadClient} {
			if c != nil {
				c.CloseIdleConnections()
			}
		}
		if e.proxyTransport != nil {
			e.proxyTransport.CloseIdleConnections()
		}
		e.closeErr = errors.Join(errs...)
		e.log.Info("local environment stopped")
	})
	return e.closeErr
}

// instanceList returns the instances matching keep (all when nil), sorted by
// region order then version.
func (e *Env) instanceList(keep func(region, version string) bool) []*instance {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []*instance
	for _, r := range e.regions {
		versions := make([]string, 0, len(e.instances[r]))
		for v := range e.instances[r] {
			versions = append(versions, v)
		}
		sort.Strings(versions)
		for _, v := range versions {
			if keep == nil || keep(r, v) {
				out = append(out, e.instances[r][v]...)
			}
		}
	}
	return out
}

func nowMs() int64 { return time.Now().UnixMilli() }
