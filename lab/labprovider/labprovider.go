// Package labprovider is the "lab" provider: the drillship lab (`drillship
// lab up`) as deploy and drill targets, with no addresses in the spec. It
// reads the lab's state file when a call runs, in the worker's process, and
// hands the work to the self-hosted providers pointed at it:
//
//   - traffic: the lab's HAProxy backend (the haproxy provider)
//   - release: the lab's sample-service versions (deploy = serve, stop =
//     fail health checks and requests, promote/prune = the lab's bookkeeping)
//   - signals: the lab's Prometheus (the prometheus provider), with the
//     scope's values put into the PromQL, and HAProxy's health checks for up
//   - faults: error_rate and service_down on a version
//
// Database faults (kill_node) and checks belong to the postgres provider,
// which takes the same lab setting.
package labprovider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/haproxy"
	"github.com/drillship/drillship/activities/prometheus"
	"github.com/drillship/drillship/lab"
)

// Name is the provider name in specs.
const Name = "lab"

// Config is the provider's settings.
//
//	lab: default   # "default" ($DRILLSHIP_LAB_DIR, else ~/.drillship/lab; the
//	               # default when left out) or the absolute path of a lab
//	               # directory or state file
type Config struct {
	Lab string `json:"lab,omitempty"`
}

// Provider returns the lab provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:    Name,
		Declare: Declare,
		Traffic: func(cfg map[string]any) (activities.Traffic, error) { return New(cfg, nil) },
		Release: func(cfg map[string]any) (activities.Release, error) { return New(cfg, nil) },
		Signals: func(cfg map[string]any) (activities.Signals, error) { return New(cfg, nil) },
		Faults: func(cfg map[string]any) (activities.Faults, error) {
			c, err := New(cfg, nil)
			if err != nil {
				return nil, err
			}
			return c.Faults(), nil
		},
	}
}

// Client reaches one lab.
type Client struct {
	ref string
	log *slog.Logger
}

// New validates the settings; it does no I/O.
func New(cfg map[string]any, logger *slog.Logger) (*Client, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	if c.Lab == "" {
		c.Lab = lab.DefaultRef
	}
	if err := lab.CheckRef(c.Lab); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Client{ref: c.Lab, log: logger}, nil
}

// state reads the lab now. No lab is permanent: retrying does not start one.
func (c *Client) state() (*lab.State, error) {
	st, err := lab.Resolve(c.ref)
	if errors.Is(err, lab.ErrNoLab) {
		return nil, activities.Permanent(err)
	}
	return st, err
}

func (c *Client) haproxy() (*haproxy.Client, error) {
	st, err := c.state()
	if err != nil {
		return nil, err
	}
	set, ok := st.Settings()["haproxy"]
	if !ok {
		return nil, activities.Permanent(fmt.Errorf("lab: the lab in %s runs no haproxy", st.Dir))
	}
	return haproxy.New(set)
}

func (c *Client) control() (*lab.ControlClient, error) {
	st, err := c.state()
	if err != nil {
		return nil, err
	}
	cc, err := st.Control()
	if err != nil {
		return nil, activities.Permanent(err)
	}
	return cc, nil
}

// SetWeights sets the weights of the lab's HAProxy servers (by version).
// A lab with Kubernetes refuses: there the HTTPRoute is the only source of
// the weights (its data plane sets them), so a spec uses gateway-api.
func (c *Client) SetWeights(ctx context.Context, w activities.Weights) error {
	if st, err := c.state(); err == nil && st.Kubernetes != nil {
		return activities.Permanent(fmt.Errorf("lab: the lab in %s runs Kubernetes: its HAProxy follows HTTPRoute %s/%s; shift traffic with the gateway-api provider (settings in the lab's state)", st.Dir, st.Kubernetes.Namespace, st.Kubernetes.Route))
	}
	h, err := c.haproxy()
	if err != nil {
		return err
	}
	return h.SetWeights(ctx, w)
}

// Weights reads the weights back from HAProxy.
func (c *Client) Weights(ctx context.Context) (activities.Weights, error) {
	h, err := c.haproxy()
	if err != nil {
		return nil, err
	}
	return h.Weights(ctx)
}

// State reads the lab's release bookkeeping.
func (c *Client) State(ctx context.Context) (activities.ReleaseState, error) {
	cc, err := c.control()
	if err != nil {
		return activities.ReleaseState{}, err
	}
	r, err := cc.Release(ctx)
	if err != nil {
		return activities.ReleaseState{}, err
	}
	return activities.ReleaseState{Stable: r.Stable, Running: r.Running, Artifacts: r.Artifacts}, nil
}

func (c *Client) releaseOp(ctx context.Context, op, version string) error {
	cc, err := c.control()
	if err != nil {
		return err
	}
	err = cc.ReleaseOp(ctx, op, version)
	if errors.Is(err, lab.ErrUnknownVersion) {
		return activities.Permanent(err)
	}
	return err
}

// Deploy makes version serve (health checks pass, requests answered).
func (c *Client) Deploy(ctx context.Context, version string) error {
	return c.releaseOp(ctx, "deploy", version)
}

// Promote records version as stable.
func (c *Client) Promote(ctx context.Context, version string) error {
	return c.releaseOp(ctx, "promote", version)
}

// Stop makes version fail its health checks and requests.
func (c *Client) Stop(ctx context.Context, version string) error {
	return c.releaseOp(ctx, "stop", version)
}

// Prune forgets the artifacts neither current nor a rollback to the version
// it replaced needs; the lab records promotions (package retention).
func (c *Client) Prune(ctx context.Context, current string, keep int) ([]string, error) {
	cc, err := c.control()
	if err != nil {
		return nil, err
	}
	return cc.Prune(ctx, current, keep)
}

// Fault kinds.
const (
	FaultErrorRate   = "error_rate"   // params: version, rate (0..1)
	FaultServiceDown = "service_down" // params: version
	// FaultFeatureErrorRate breaks the feature behind the lab flag: requests
	// served through it fail at rate, while the flag sends them there.
	FaultFeatureErrorRate = "feature_error_rate" // params: version, rate (0..1)
)

func (c *Client) changeService(ctx context.Context, ch lab.ServiceChange) error {
	cc, err := c.control()
	if err != nil {
		return err
	}
	err = cc.ChangeService(ctx, ch)
	if errors.Is(err, lab.ErrUnknownVersion) {
		return activities.Permanent(err)
	}
	return err
}

func change(f activities.Fault, undo bool) (lab.ServiceChange, error) {
	ch := lab.ServiceChange{Version: f.Params["version"]}
	if ch.Version == "" {
		return ch, activities.Permanent(fmt.Errorf("lab: fault %s: params.version is required", f.Kind))
	}
	switch f.Kind {
	case FaultErrorRate, FaultFeatureErrorRate:
		rate := 0.0
		if !undo {
			r, err := strconv.ParseFloat(f.Params["rate"], 64)
			if err != nil || r < 0 || r > 1 {
				return ch, activities.Permanent(fmt.Errorf("lab: fault %s: params.rate %q: want 0..1", f.Kind, f.Params["rate"]))
			}
			rate = r
		}
		if f.Kind == FaultFeatureErrorRate {
			ch.FeatureErrorRate = &rate
		} else {
			ch.ErrorRate = &rate
		}
	case FaultServiceDown:
		down := !undo
		ch.Down = &down
	default:
		return ch, activities.Permanent(fmt.Errorf("lab: fault kind %q: allowed are %s, %s, %s (kill_node is the postgres provider's)", f.Kind, FaultErrorRate, FaultServiceDown, FaultFeatureErrorRate))
	}
	return ch, nil
}

// faults is the Faults capability: a type of its own, as its Stop would
// clash with Release's.
//
// Ownership: a lab service has one error rate and one down switch per
// version, with no room for a label, so the lab cannot say who set them.
// Stop therefore verifies the state before it undoes anything: it resets an
// error rate only while the version still has the rate this fault set, and
// brings a version up only while it is down. A rate someone else set since
// is left alone (NotOurs).
type faults struct{ c *Client }

// Inject breaks a version of the sample service; the handle is the version.
func (f faults) Inject(ctx context.Context, flt activities.Fault) (string, error) {
	ch, err := change(flt, false)
	if err != nil {
		return "", err
	}
	return ch.Version, f.c.changeService(ctx, ch)
}

// Stop undoes the fault if the version still shows it: error rate back to
// 0, the version serving again. Nothing to undo is NotFound.
func (f faults) Stop(ctx context.Context, flt activities.Fault, _ string) (activities.StopResult, error) {
	var r activities.StopResult
	set, err := change(flt, false)
	if err != nil {
		return r, err
	}
	cc, err := f.c.control()
	if err != nil {
		return r, err
	}
	svcs, err := cc.Services(ctx)
	if err != nil {
		return r, err
	}
	var cur *lab.ServiceStatus
	for i := range svcs {
		if svcs[i].Version == set.Version {
			cur = &svcs[i]
		}
	}
	switch {
	case cur == nil:
		return r, activities.Permanent(fmt.Errorf("lab: fault %s: version %s: %w", flt.Kind, set.Version, lab.ErrUnknownVersion))
	case set.ErrorRate != nil && cur.ErrorRate == 0, set.Down != nil && !cur.Down,
		set.FeatureErrorRate != nil && cur.FeatureErrorRate == 0:
		r.NotFound = true
		return r, nil
	case set.ErrorRate != nil && cur.ErrorRate != *set.ErrorRate:
		r.NotOurs = fmt.Sprintf("%s error rate %g was set by someone else (this fault sets %g)", set.Version, cur.ErrorRate, *set.ErrorRate)
		return r, nil
	case set.FeatureErrorRate != nil && cur.FeatureErrorRate != *set.FeatureErrorRate:
		r.NotOurs = fmt.Sprintf("%s feature error rate %g was set by someone else (this fault sets %g)", set.Version, cur.FeatureErrorRate, *set.FeatureErrorRate)
		return r, nil
	}
	undo, _ := change(flt, true)
	if err := f.c.changeService(ctx, undo); err != nil {
		return r, err
	}
	r.Stopped = []string{set.Version}
	return r, nil
}

// Faults returns the Faults capability of c.
func (c *Client) Faults() activities.Faults { return faults{c} }

// PromQL for the portable metrics over the sample service's series;
// {{version}} and {{window}} are filled in from the query.
var portable = map[string]string{
	activities.MetricErrorRate: `sum(rate(` + lab.MetricRequests + `{version="{{version}}",code=~"5.."}[{{window}}])) / sum(rate(` + lab.MetricRequests + `{version="{{version}}"}[{{window}}]))`,
	activities.MetricRequests:  `sum(rate(` + lab.MetricRequests + `{version="{{version}}"}[{{window}}]))`,
	activities.MetricLatencyP99: `histogram_quantile(0.99, sum by (le) (rate(` + lab.MetricDuration +
		`_bucket{version="{{version}}"}[{{window}}])))`,
}

// Sample answers from the lab's Prometheus: Expr is PromQL with {{...}}
// placeholders; without Expr, error_rate, request_rate and latency_p99 of
// the scope's version. Metric up of a version is HAProxy's health check.
func (c *Client) Sample(ctx context.Context, q activities.Query) (activities.Sample, error) {
	if q.Expr == "" && q.Metric == activities.MetricUp {
		h, err := c.haproxy()
		if err != nil {
			return activities.Sample{}, err
		}
		return h.Sample(ctx, q)
	}
	tmpl := q.Expr
	if tmpl == "" {
		tmpl = portable[q.Metric]
		if tmpl == "" {
			return activities.Sample{}, activities.Permanent(fmt.Errorf("lab: metric %q needs expr (PromQL); without it allowed are error_rate, request_rate, latency_p99, up", q.Metric))
		}
		if q.Scope["version"] == "" {
			return activities.Sample{}, activities.Permanent(fmt.Errorf("lab: metric %s needs scope version", q.Metric))
		}
	}
	expr, err := prometheus.Expr(tmpl, q)
	if err != nil {
		return activities.Sample{}, activities.Permanent(fmt.Errorf("lab: %w", err))
	}
	st, err := c.state()
	if err != nil {
		return activities.Sample{}, err
	}
	set, ok := st.Settings()["prometheus"]
	if !ok {
		return activities.Sample{}, activities.Permanent(fmt.Errorf("lab: the lab in %s runs no prometheus", st.Dir))
	}
	p, err := prometheus.New(set, c.log)
	if err != nil {
		return activities.Sample{}, err
	}
	pq := q
	pq.Expr, pq.Scope = expr, nil
	return p.Sample(ctx, pq)
}
