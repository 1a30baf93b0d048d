package localenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// instance is one running copy of the sample service: a real HTTP server on
// its own loopback listener. A region outage closes the listener (users see
// connection refused) and recovery listens again on the same port.
type instance struct {
	region, version string
	handler         http.Handler
	env             *Env

	mu   sync.Mutex
	addr string // host:port, kept across restarts so the URL stays the same
	srv  *http.Server
	done chan struct{}

	healthy atomic.Bool // last answer of the proxy's health check
}

func (e *Env) newInstance(region, version string) *instance {
	in := &instance{region: region, version: version, env: e}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "ok %s/%s\n", region, version)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { e.serveInstance(w, r, region, version) })
	in.handler = mux
	return in
}

// start listens (again) and serves. It is a no-op when already serving.
func (in *instance) start() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.srv != nil {
		return nil
	}
	addr := in.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil && in.addr != "" {
		// Someone took the port while the instance was down; a new port is
		// what a replaced host would get too.
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return fmt.Errorf("localenv: instance %s/%s: listen: %w", in.region, in.version, err)
	}
	in.addr = ln.Addr().String()
	srv := &http.Server{Handler: in.handler, ReadHeaderTimeout: 5 * time.Second, ErrorLog: in.env.errLog}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	in.srv, in.done = srv, done
	return nil
}

// stop closes the listener and every connection, so that callers see
// connection refused. It is a no-op when already stopped.
func (in *instance) stop() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.srv == nil {
		return
	}
	_ = in.srv.Close()
	<-in.done
	in.srv, in.done = nil, nil
	in.healthy.Store(false)
}

func (in *instance) url() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return "http://" + in.addr
}

func (in *instance) serving() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.srv != nil
}

// effect is what the active faults and runner actions do to one request.
type effect struct {
	extra     time.Duration
	failRates []float64
	depDown   bool
	shed      bool
}

func (e *Env) effectFor(region, version string) effect {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var ef effect
	for _, f := range e.faults {
		if f.EndedAt != 0 || !f.matches(region, version) {
			continue
		}
		switch f.Kind {
		case FaultLatency:
			ef.extra += time.Duration(f.ms) * time.Millisecond
		case FaultErrorRate, FaultBadVersion:
			ef.failRates = append(ef.failRates, f.rate)
		case FaultDependencyDown:
			if f.Params["dependency"] == depRecs {
				ef.depDown = true
			}
		}
	}
	ef.shed = e.shed[depRecs]
	return ef
}

// serveInstance is the sample service's one endpoint: a little work, a call
// to the "recs" dependency, and a body naming where it was served.
func (e *Env) serveInstance(w http.ResponseWriter, r *http.Request, region, version string) {
	ef := e.effectFor(region, version)
	work := 2*time.Millisecond + rand.N(3*time.Millisecond) + ef.extra
	t := time.NewTimer(work)
	select {
	case <-t.C:
	case <-r.Context().Done():
		// The caller went away or the server is closing: do not linger.
		t.Stop()
		return
	}
	for _, rate := range ef.failRates {
		if rand.Float64() < rate {
			http.Error(w, fmt.Sprintf("injected error (%s/%s)", region, version), http.StatusInternalServerError)
			return
		}
	}
	recs := "ok"
	switch {
	case ef.shed:
		recs = "shed" // degraded: served without the dependency
	case ef.depDown:
		http.Error(w, fmt.Sprintf("dependency %s unavailable (%s/%s)", depRecs, region, version), http.StatusInternalServerError)
		return
	default:
		time.Sleep(500 * time.Microsecond) // the dependency call itself
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Region", region)
	w.Header().Set("X-Version", version)
	fmt.Fprintf(w, "service=%s region=%s version=%s recs=%s\n", e.service, region, version, recs)
}
