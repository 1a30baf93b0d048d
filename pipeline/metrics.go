// Package pipeline is drillship's metrics of itself: the pipeline watched
// like a service. A worker serves them on /metrics in Prometheus' format,
// together with the Temporal SDK's own metrics (through the SDK's tally
// handler) and the DORA figures.
//
// Where they are recorded: a worker interceptor sees every deploy and
// drill workflow return, with its record, on the worker that ran its last
// workflow task. It records only when that return is not a replay, so a
// workflow replayed from history (a cache eviction, a query on a closed
// run, a restarted worker) is not counted twice, and it issues no
// commands, so workflows stay deterministic and no history changes. An
// activity recording at the end instead would need a new activity in every
// workflow (a versioning marker, a history event) for something that is
// not the workflow's business.
package pipeline

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	tallyprom "github.com/uber-go/tally/v4/prometheus"

	"github.com/uber-go/tally/v4"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"

	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/workflows"
)

// Buckets, in seconds. Each has a bound at the notes' target (5 min for a
// deploy, 2 min for a rollback) so that the alert's p99 is judged at the
// target exactly, not interpolated across it.
var (
	DeployBuckets   = []float64{15, 30, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1800, 3600}
	RollbackBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 45, 60, 90, 120, 180, 300}
	PhaseBuckets    = []float64{1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200}
)

// Metrics is the registry a worker serves.
type Metrics struct {
	Registry *prometheus.Registry

	sdk   client.MetricsHandler
	close func()

	deployDuration *prometheus.HistogramVec
	timeToRollback *prometheus.HistogramVec
	deploys        *prometheus.CounterVec
	drillPhase     *prometheus.HistogramVec
	drills         *prometheus.CounterVec
	breakGlass     *prometheus.CounterVec
	refusals       *prometheus.CounterVec

	dora *doraGauges
}

// New builds the registry: drillship's metrics, the SDK's (through
// SDKHandler), the DORA gauges (filled by WatchDORA) and the Go runtime's.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg}
	svc := []string{"service", "environment"}
	m.deployDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "drillship_deploy_duration_seconds", Buckets: DeployBuckets,
		Help: "Deploys from start to end (promoted, rolled back, aborted, refused), by outcome; the notes' target is p99 under 5 minutes.",
	}, append(svc, "outcome"))
	m.timeToRollback = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "drillship_deploy_time_to_rollback_seconds", Buckets: RollbackBuckets,
		Help: "From the failing sample to traffic verified back on stable, per rolled-back deploy; the notes' target is p99 under 2 minutes.",
	}, svc)
	m.deploys = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drillship_deploys_total", Help: "Finished deploys by outcome.",
	}, append(svc, "outcome"))
	m.drillPhase = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "drillship_drill_phase_seconds", Buckets: PhaseBuckets,
		Help: "Drills: from the fault's injection to each phase's mark (detected, engaged, diagnosed, mitigated, recovered, restored), as the drill's targets are measured.",
	}, []string{"scenario", "environment", "phase"})
	m.drills = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drillship_drills_total", Help: "Finished drills by outcome.",
	}, []string{"scenario", "environment", "outcome"})
	m.breakGlass = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drillship_break_glass_total", Help: "Break-glass uses (during a deploy, or at its start past a policy refusal).",
	}, svc)
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drillship_policy_refusals_total", Help: "Deploys and drills the release policy refused, by gate (freeze, error_budget, burn_rate).",
	}, []string{"kind", "service", "environment", "gate"})
	m.dora = newDORAGauges()
	reg.MustRegister(m.deployDuration, m.timeToRollback, m.deploys, m.drillPhase, m.drills, m.breakGlass, m.refusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.dora.register(reg)

	// The SDK's metrics: its tally handler onto the same registry, with
	// Prometheus naming and histograms rather than summaries, so that they
	// aggregate across workers.
	// A metric the SDK emits with another set of tag names than before
	// cannot be registered again; the reporter's default is to panic,
	// which would take the worker down for a metric: it is dropped.
	reporter := tallyprom.NewReporter(tallyprom.Options{Registerer: reg, DefaultTimerType: tallyprom.HistogramTimerType,
		OnRegisterError: func(error) {}})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter: reporter, Separator: tallyprom.DefaultSeparator, SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	m.sdk = sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope))
	m.close = func() { _ = closer.Close() }
	return m
}

// SDKHandler is the client.Options.MetricsHandler that puts the SDK's
// metrics (polls, task latencies, activity failures, ...) on /metrics.
func (m *Metrics) SDKHandler() client.MetricsHandler { return m.sdk }

// Close stops the SDK scope's reporting loop.
func (m *Metrics) Close() { m.close() }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Server is /metrics being served.
type Server struct {
	Addr string // host:port actually bound
	srv  *http.Server
}

// URL of /metrics.
func (s *Server) URL() string { return "http://" + s.Addr + "/metrics" }

// Close stops serving.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Serve listens on addr (host:port; port 0 picks one) and serves /metrics
// until Close.
func (m *Metrics) Serve(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	s := &Server{Addr: ln.Addr().String(), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = ln.Close()
		}
	}()
	return s, nil
}

func secs(ms int64) float64 { return float64(ms) / 1000 }

// touch creates a service's deploy histograms at zero (idempotent).
func (m *Metrics) touch(service, env string) {
	m.timeToRollback.WithLabelValues(service, env)
	for _, o := range []string{workflows.OutcomePromoted, workflows.OutcomeRolledBack} {
		m.deployDuration.WithLabelValues(service, env, o)
		m.deploys.WithLabelValues(service, env, o)
	}
}

// ObserveDeploy records a finished deploy.
func (m *Metrics) ObserveDeploy(r workflows.DeployResult) {
	if r.Outcome == "" {
		return // no record: nothing to tell
	}
	env := r.Environment
	m.deploys.WithLabelValues(r.Service, env, r.Outcome).Inc()
	if r.DurationMs > 0 {
		m.deployDuration.WithLabelValues(r.Service, env, r.Outcome).Observe(secs(r.DurationMs))
	}
	if r.TimeToRollbackMs != nil {
		m.timeToRollback.WithLabelValues(r.Service, env).Observe(secs(*r.TimeToRollbackMs))
	}
	for _, a := range r.Audit {
		if a.Action == workflows.UpdateBreakGlass || a.Action == "break-glass-start" {
			m.breakGlass.WithLabelValues(r.Service, env).Inc()
		}
	}
	if r.Outcome == workflows.OutcomeRefused {
		if g := gateOf(r.Reason); g != "" {
			m.refusals.WithLabelValues("deploy", r.Service, env, g).Inc()
		}
	}
}

// ObserveDrill records a finished drill.
func (m *Metrics) ObserveDrill(r ledger.Record) {
	if r.Outcome == "" {
		return
	}
	m.drills.WithLabelValues(r.Name, r.Environment, r.Outcome).Inc()
	if t0, ok := r.MarkAt(ledger.Injected); ok {
		for _, mk := range r.Marks {
			if mk.Name != ledger.Injected && mk.At >= t0 {
				m.drillPhase.WithLabelValues(r.Name, r.Environment, mk.Name).Observe(secs(mk.At - t0))
			}
		}
	}
	if r.Outcome == ledger.OutcomeRefused {
		if g := gateOf(r.Reason); g != "" {
			m.refusals.WithLabelValues("drill", r.Name, r.Environment, g).Inc()
		}
	}
}

// gateOf names the policy gate a refusal's reason cites ("policy: refused
// by freeze nights: ..."), or "" when the policy did not refuse it (a
// lease held, no stable version).
func gateOf(reason string) string {
	rest, ok := strings.CutPrefix(reason, "policy: refused by ")
	if !ok {
		return ""
	}
	for _, g := range []struct{ prefix, gate string }{{"freeze", "freeze"}, {"error budget", "error_budget"}, {"burn rate", "burn_rate"}} {
		if strings.HasPrefix(rest, g.prefix) {
			return g.gate
		}
	}
	return "other"
}
