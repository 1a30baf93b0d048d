// Package local is the provider for drillship's local environment (package
// localenv): traffic, release, signals, faults and runner, all driven over
// the environment's control API so that a worker in another process can use
// it.
package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/localenv"
)

// Name is the provider's name in specs.
const Name = "local"

// ErrNoURL is returned (marked permanent) by every call when the provider
// was built without the environment's URL.
var ErrNoURL = errors.New("local environment URL not set (run under drillship dev/demo or pass --local-env)")

// Provider returns the local provider talking to the control API at baseURL
// (localenv.Env.URL()). An empty baseURL still validates settings; calls
// then fail with ErrNoURL.
func Provider(baseURL string) activities.Provider {
	c := &client{base: strings.TrimRight(baseURL, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	return activities.Provider{
		Name:    Name,
		Declare: Declare,
		Traffic: func(cfg map[string]any) (activities.Traffic, error) {
			var s struct {
				Level string `json:"level"`
			}
			if err := activities.DecodeConfig(cfg, &s); err != nil {
				return nil, err
			}
			switch s.Level {
			case "", "version":
				return &traffic{c: c, path: "/api/weights/versions"}, nil
			case "region":
				return &traffic{c: c, path: "/api/weights/regions"}, nil
			}
			return nil, fmt.Errorf("config: level %q: allowed region, version", s.Level)
		},
		Release: func(cfg map[string]any) (activities.Release, error) {
			if err := activities.DecodeConfig(cfg, &struct{}{}); err != nil {
				return nil, err
			}
			return &release{c: c}, nil
		},
		Signals: func(cfg map[string]any) (activities.Signals, error) {
			if err := activities.DecodeConfig(cfg, &struct{}{}); err != nil {
				return nil, err
			}
			return &signals{c: c}, nil
		},
		Faults: func(cfg map[string]any) (activities.Faults, error) {
			if err := activities.DecodeConfig(cfg, &struct{}{}); err != nil {
				return nil, err
			}
			return &faults{c: c}, nil
		},
		Runner: func(cfg map[string]any) (activities.Runner, error) {
			if err := activities.DecodeConfig(cfg, &struct{}{}); err != nil {
				return nil, err
			}
			return &runner{c: c}, nil
		},
	}
}

// client calls the control API. 4xx answers are permanent errors carrying the
// server's message; 5xx answers and transport errors are left retryable.
type client struct {
	base string
	http *http.Client
}

func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	if c.base == "" {
		return activities.Permanent(ErrNoURL)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return activities.Permanent(fmt.Errorf("local: %s %s: encode body: %w", method, path, err))
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return activities.Permanent(fmt.Errorf("local: %s %s: %w", method, path, err))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("local: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("local: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb localenv.ErrorBody
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		err := &statusError{code: resp.StatusCode, msg: fmt.Sprintf("local: %s %s: %s: %s", method, path, resp.Status, msg)}
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			return activities.Permanent(err)
		}
		return err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("local: %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// statusError is a non-2xx answer of the control API.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func isStatus(err error, code int) bool {
	var se *statusError
	return errors.As(err, &se) && se.code == code
}

type traffic struct {
	c    *client
	path string
}

func (t *traffic) SetWeights(ctx context.Context, w activities.Weights) error {
	return t.c.do(ctx, http.MethodPut, t.path, map[string]int(w), nil)
}

func (t *traffic) Weights(ctx context.Context) (activities.Weights, error) {
	var w activities.Weights
	err := t.c.do(ctx, http.MethodGet, t.path, nil, &w)
	return w, err
}

type release struct{ c *client }

func (r *release) State(ctx context.Context) (activities.ReleaseState, error) {
	var s localenv.State
	if err := r.c.do(ctx, http.MethodGet, "/api/state", nil, &s); err != nil {
		return activities.ReleaseState{}, err
	}
	return activities.ReleaseState{Service: s.Service, Stable: s.Stable, Running: s.Running, Artifacts: s.Artifacts}, nil
}

func (r *release) version(ctx context.Context, version, op string) error {
	if version == "" {
		return activities.Permanent(fmt.Errorf("local: %s: version is empty", op))
	}
	return r.c.do(ctx, http.MethodPost, "/api/versions/"+url.PathEscape(version)+"/"+op, nil, nil)
}

func (r *release) Deploy(ctx context.Context, version string) error {
	return r.version(ctx, version, "deploy")
}

func (r *release) Promote(ctx context.Context, version string) error {
	return r.version(ctx, version, "promote")
}

func (r *release) Stop(ctx context.Context, version string) error {
	return r.version(ctx, version, "stop")
}

// Prune asks the environment, which records promotions, to apply the
// retention rule; it answers what it removed.
func (r *release) Prune(ctx context.Context, current string, keep int) ([]string, error) {
	if keep < 0 {
		return nil, activities.Permanent(fmt.Errorf("local: prune: keep %d: allowed 0 or more", keep))
	}
	q := url.Values{"keep": {strconv.Itoa(keep)}}
	if current != "" {
		q.Set("current", current)
	}
	var p localenv.PruneResult
	err := r.c.do(ctx, http.MethodPost, "/api/artifacts/prune?"+q.Encode(), nil, &p)
	return p.Removed, err
}

type signals struct{ c *client }

var metrics = []string{
	activities.MetricErrorRate, activities.MetricLatencyP99, activities.MetricRequests, activities.MetricUp,
}

const defaultWindow = 10 * time.Second

func (s *signals) Sample(ctx context.Context, q activities.Query) (activities.Sample, error) {
	if !slices.Contains(metrics, q.Metric) {
		return activities.Sample{}, activities.Permanent(fmt.Errorf("local: metric %q: allowed %s", q.Metric, strings.Join(metrics, ", ")))
	}
	v := url.Values{"metric": {q.Metric}}
	for k, val := range q.Scope {
		if k != "region" && k != "version" {
			return activities.Sample{}, activities.Permanent(fmt.Errorf("local: scope key %q: allowed region, version", k))
		}
		v.Set(k, val)
	}
	if q.Expr != "" || len(q.Params) > 0 {
		return activities.Sample{}, activities.Permanent(errors.New("local: expr and params: not used by the local provider (use metric and scope)"))
	}
	w := q.Window
	if w == 0 {
		w = defaultWindow
	}
	v.Set("window", w.String())
	var got localenv.SLI
	if err := s.c.do(ctx, http.MethodGet, "/api/sli?"+v.Encode(), nil, &got); err != nil {
		return activities.Sample{}, err
	}
	return activities.Sample{Value: got.Value, At: got.At, NoData: got.NoData, Detail: got.Detail}, nil
}

type faults struct{ c *client }

// Inject puts the fault in under its owner; the environment mints an id that
// no restart reuses, and a retry finds the owner's fault again.
func (f *faults) Inject(ctx context.Context, ft activities.Fault) (string, error) {
	var r localenv.FaultRecord
	if err := f.c.do(ctx, http.MethodPost, "/api/faults", localenv.FaultRequest{Kind: ft.Kind, Params: ft.Params, Owner: ft.Owner}, &r); err != nil {
		return "", err
	}
	return r.ID, nil
}

// Stop ends the owner's fault. The environment checks owner, kind and
// params before it ends anything (in one step, under its lock), and finds
// the owner's fault by kind and params when the handle is empty (a crash
// between inject and recording the handle) or names someone else's fault.
func (f *faults) Stop(ctx context.Context, ft activities.Fault, handle string) (activities.StopResult, error) {
	var a localenv.StopAnswer
	err := f.c.do(ctx, http.MethodPost, "/api/faults/stop", localenv.FaultRequest{Kind: ft.Kind, Params: ft.Params, Owner: ft.Owner, ID: handle}, &a)
	if err != nil {
		return activities.StopResult{}, err
	}
	r := activities.StopResult{NotFound: a.NotFound, NotOurs: a.NotOurs}
	for _, s := range a.Stopped {
		r.Stopped = append(r.Stopped, s.ID)
	}
	return r, nil
}

// runner runs the environment's actions: shed, unshed and load. Each sets a
// state (shedding on or off, a multiplier) rather than changing it by an
// amount, so running one twice is the same as once: safe to retry without
// using Action.Key.
type runner struct{ c *client }

// Load reads the load multiplier in effect (activities.LoadReader).
func (r *runner) Load(ctx context.Context) (float64, error) {
	var s localenv.State
	if err := r.c.do(ctx, http.MethodGet, "/api/state", nil, &s); err != nil {
		return 0, err
	}
	return s.Load.Multiplier, nil
}

func (r *runner) Run(ctx context.Context, a activities.Action) (activities.Output, error) {
	if len(a.Argv) > 0 {
		return activities.Output{}, activities.Permanent(fmt.Errorf("local: action %q: argv is not supported (use the exec provider)", a.Name))
	}
	var res localenv.ActionResult
	if err := r.c.do(ctx, http.MethodPost, "/api/actions", localenv.ActionRequest{Name: a.Name, Params: a.Params}, &res); err != nil {
		return activities.Output{}, err
	}
	return activities.Output{Detail: res.Detail}, nil
}
