package lab

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Service is one instance of the lab's sample service: an HTTP server on
// loopback that answers GET / with its version, fails a settable share of
// requests, and exposes Prometheus metrics on /metrics.
type Service struct {
	Version string
	URL     string // http://127.0.0.1:port

	errRate  atomic.Uint64 // math.Float64bits of the share of requests failed
	down     atomic.Bool
	served   atomic.Uint64
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	srv      *http.Server

	// The feature behind the lab flag: while the flag is on for a request,
	// the request is served through it, and the feature fails featErr of
	// its requests. Flipping the flag off stops them: the kill switch.
	flag       atomic.Pointer[flagReader]
	featErr    atomic.Uint64 // math.Float64bits
	featServed atomic.Uint64
	featReqs   *prometheus.CounterVec
}

// flagReader evaluates the lab flag for one request.
type flagReader struct {
	client  *openfeature.Client
	feature string
}

// Metric names the sample service exposes; PromQL in tests and specs uses them.
const (
	MetricRequests = "drillship_lab_requests_total"
	MetricDuration = "drillship_lab_request_duration_seconds"
)

func startService(version string) (*Service, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("lab: service %s: %w", version, err)
	}
	s := &Service{Version: version, URL: "http://" + ln.Addr().String()}
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"version": version}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricRequests, Help: "Requests served, by status code.", ConstLabels: labels,
	}, []string{"code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: MetricDuration, Help: "Request latency.", ConstLabels: labels,
		Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5},
	}, []string{"code"})
	s.featReqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricFeatureRequests, Help: "Requests served through the lab flag's feature, by status code.", ConstLabels: labels,
	}, []string{"code"})
	reg.MustRegister(s.requests, s.duration, s.featReqs)
	// Pre-create both codes so that rate() sees a zero series from the start.
	s.requests.WithLabelValues("200")
	s.requests.WithLabelValues("500")

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/", s.serve)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }() // returns ErrServerClosed on close
	return s, nil
}

// SetErrorRate makes the service fail share (0..1) of its requests with 500.
// Failures are spread evenly (every 10th at 0.1), not drawn at random, so that
// a test can predict the rate Prometheus reports.
func (s *Service) SetErrorRate(share float64) {
	s.errRate.Store(math.Float64bits(math.Max(0, math.Min(1, share))))
}

// ErrorRate returns the share of requests the service fails.
func (s *Service) ErrorRate() float64 { return math.Float64frombits(s.errRate.Load()) }

// SetDown makes the service fail its health check and every request (503).
func (s *Service) SetDown(down bool) { s.down.Store(down) }

// SetFeatureErrorRate makes the flag's feature fail share (0..1) of the
// requests served through it.
func (s *Service) SetFeatureErrorRate(share float64) {
	s.featErr.Store(math.Float64bits(math.Max(0, math.Min(1, share))))
}

// FeatureErrorRate returns the share of feature requests that fail.
func (s *Service) FeatureErrorRate() float64 { return math.Float64frombits(s.featErr.Load()) }

func (s *Service) useFlag(c *openfeature.Client, feature string) {
	s.flag.Store(&flagReader{client: c, feature: feature})
}

// throughFeature asks the flag whether request n goes through the feature;
// the request number is the targeting key, so a gradual rollout sends that
// share of requests through it.
func (s *Service) throughFeature(ctx context.Context, n uint64) bool {
	f := s.flag.Load()
	if f == nil {
		return false
	}
	on, _ := f.client.BooleanValue(ctx, f.feature, false, openfeature.NewEvaluationContext(strconv.FormatUint(n, 10), nil))
	return on
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := http.StatusOK
	n := s.served.Add(1)
	rate := s.ErrorRate()
	feature := s.throughFeature(r.Context(), n)
	switch {
	case s.down.Load():
		code = http.StatusServiceUnavailable
	case math.Floor(float64(n)*rate) != math.Floor(float64(n-1)*rate):
		code = http.StatusInternalServerError
	case feature:
		m, fr := s.featServed.Add(1), s.FeatureErrorRate()
		if math.Floor(float64(m)*fr) != math.Floor(float64(m-1)*fr) {
			code = http.StatusInternalServerError
		}
	}
	if feature {
		s.featReqs.WithLabelValues(strconv.Itoa(code)).Inc()
		w.Header().Set("X-Feature", "on")
	}
	w.Header().Set("X-Version", s.Version)
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, "version %s status %d\n", s.Version, code)
	c := strconv.Itoa(code)
	s.requests.WithLabelValues(c).Inc()
	s.duration.WithLabelValues(c).Observe(time.Since(start).Seconds())
}

func (s *Service) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// startLoad sends rps GET requests per second to url until the returned
// function is called; answers are read and dropped, errors ignored (the
// services count what they served).
func startLoad(url string, rps int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	client := &http.Client{Timeout: 2 * time.Second}
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second / time.Duration(rps))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := client.Do(req)
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	return func() { cancel(); <-done }
}
