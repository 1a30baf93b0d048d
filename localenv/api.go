package localenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// SLI metric names (the portable names of activities.Query.Metric).
const (
	MetricErrorRate   = "error_rate"
	MetricLatencyP99  = "latency_p99"
	MetricRequestRate = "request_rate"
	MetricUp          = "up"
)

var sliMetrics = []string{MetricErrorRate, MetricLatencyP99, MetricRequestRate, MetricUp}

const defaultWindow = 10 * time.Second

// SLI is what GET /api/sli answers.
type SLI struct {
	Value  float64 `json:"value"`
	At     int64   `json:"at"` // Unix ms the value was true
	NoData bool    `json:"noData"`
	Count  uint64  `json:"count"` // requests in the window; instances probed for up
	Detail string  `json:"detail,omitempty"`
}

// FaultRequest is the body of POST /api/faults and POST /api/faults/stop.
// Owner is who puts the fault in (a drill's id; empty for a person). ID
// chooses the new fault's id on inject, and names the fault to stop on stop.
type FaultRequest struct {
	Kind   string            `json:"kind"`
	Params map[string]string `json:"params,omitempty"`
	Owner  string            `json:"owner,omitempty"`
	ID     string            `json:"id,omitempty"`
}

// ActionRequest is the body of POST /api/actions.
type ActionRequest struct {
	Name   string            `json:"name"`
	Params map[string]string `json:"params,omitempty"`
}

// ActionResult is what POST /api/actions answers.
type ActionResult struct {
	Detail string `json:"detail"`
}

// VersionResult is what POST /api/versions/{v}/{op} answers.
type VersionResult struct {
	Version string   `json:"version"`
	Changed bool     `json:"changed"`
	Stable  string   `json:"stable"`
	Running []string `json:"running"`
}

// PruneResult is what POST /api/artifacts/prune answers.
type PruneResult struct {
	Removed   []string `json:"removed"`
	Artifacts []string `json:"artifacts"`
}

// ErrorBody is every error answer of the control API.
type ErrorBody struct {
	Error string `json:"error"`
}

func (e *Env) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(e.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.state())
	})
	for _, level := range []string{levelRegion, levelVersion} {
		path := "/api/weights/" + level + "s"
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) {
			s := e.state()
			writeJSON(w, http.StatusOK, map[string]map[string]int{levelRegion: s.RegionWeights, levelVersion: s.VersionWeights}[level])
		})
		mux.HandleFunc("PUT "+path, func(w http.ResponseWriter, r *http.Request) {
			var body map[string]int
			if !readJSON(w, r, &body) {
				return
			}
			got, err := e.setWeights(level, body)
			respond(w, got, err)
		})
	}
	mux.HandleFunc("POST /api/versions/{version}/{op}", func(w http.ResponseWriter, r *http.Request) {
		v := r.PathValue("version")
		var changed bool
		var err error
		switch op := r.PathValue("op"); op {
		case "deploy":
			changed, err = e.deploy(v)
		case "stop":
			changed, err = e.stopVersion(v)
		case "promote":
			changed, err = e.promote(v)
		default:
			err = notFound("operation %q: allowed deploy, stop, promote", op)
		}
		s := e.state()
		respond(w, VersionResult{Version: v, Changed: changed, Stable: s.Stable, Running: s.Running}, err)
	})
	mux.HandleFunc("POST /api/artifacts/prune", func(w http.ResponseWriter, r *http.Request) {
		keep, err := strconv.Atoi(r.URL.Query().Get("keep"))
		if err != nil {
			writeErr(w, badRequest("keep %q: allowed an integer 0 or more", r.URL.Query().Get("keep")))
			return
		}
		removed, err := e.prune(r.URL.Query().Get("current"), keep)
		respond(w, PruneResult{Removed: removed, Artifacts: e.state().Artifacts}, err)
	})
	mux.HandleFunc("GET /api/sli", func(w http.ResponseWriter, r *http.Request) {
		s, err := e.sli(r)
		respond(w, s, err)
	})
	mux.HandleFunc("GET /api/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.faultList(false))
	})
	mux.HandleFunc("POST /api/faults", func(w http.ResponseWriter, r *http.Request) {
		var body FaultRequest
		if !readJSON(w, r, &body) {
			return
		}
		f, err := e.inject(body)
		respond(w, f, err)
	})
	mux.HandleFunc("POST /api/faults/stop", func(w http.ResponseWriter, r *http.Request) {
		var body FaultRequest
		if !readJSON(w, r, &body) {
			return
		}
		a, err := e.stopOwned(body)
		respond(w, a, err)
	})
	mux.HandleFunc("DELETE /api/faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		f, err := e.stopFault(r.PathValue("id"))
		respond(w, f, err)
	})
	mux.HandleFunc("POST /api/actions", func(w http.ResponseWriter, r *http.Request) {
		var body ActionRequest
		if !readJSON(w, r, &body) {
			return
		}
		d, err := e.runAction(body.Name, body.Params)
		respond(w, ActionResult{Detail: d}, err)
	})
	mux.HandleFunc("PUT /api/load", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Multiplier *float64 `json:"multiplier"`
		}
		if !readJSON(w, r, &body) {
			return
		}
		if body.Multiplier == nil || *body.Multiplier < 0 || *body.Multiplier > 100 {
			writeErr(w, badRequest("multiplier: required, allowed 0..100"))
			return
		}
		e.SetLoad(*body.Multiplier)
		writeJSON(w, http.StatusOK, e.state().Load)
	})
	e.incidentRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, notFound("%s %s: no such endpoint (see package localenv's doc)", r.Method, r.URL.Path))
	})
	return mux
}

// sli answers one windowed query from the metric ring, or probes instances
// for up.
func (e *Env) sli(r *http.Request) (SLI, error) {
	q := r.URL.Query()
	metric := q.Get("metric")
	if !slices.Contains(sliMetrics, metric) {
		return SLI{}, badRequest("metric %q: allowed %s", metric, strings.Join(sliMetrics, ", "))
	}
	region, version := q.Get("region"), q.Get("version")
	if region != "" && !slices.Contains(e.regions, region) {
		return SLI{}, badRequest("region %q: allowed %s", region, strings.Join(e.regions, ", "))
	}
	win := defaultWindow
	if s := q.Get("window"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Millisecond || d > history {
			return SLI{}, badRequest("window %q: allowed a duration 1ms..%s", s, history)
		}
		win = d
	}
	keep := func(rg, v string) bool {
		return (region == "" || rg == region) && (version == "" || v == version)
	}
	if metric == MetricUp {
		return e.up(r, keep), nil
	}
	now := time.Now()
	got := e.metrics.query(keep, win, now)
	out := SLI{At: now.UnixMilli(), Count: got.count, NoData: got.count == 0}
	switch metric {
	case MetricErrorRate:
		if got.count > 0 {
			out.Value = float64(got.errs) / float64(got.count)
		}
		out.Detail = fmt.Sprintf("%d errors of %d requests in %s", got.errs, got.count, win)
	case MetricLatencyP99:
		out.Value = quantile(got.lat, 0.99)
		out.Detail = fmt.Sprintf("p99 of %d requests in %s", got.count, win)
	case MetricRequestRate:
		out.Value = float64(got.count) / win.Seconds()
		out.NoData = false // zero requests is a rate, not a gap
		out.Detail = fmt.Sprintf("%d requests in %s", got.count, win)
	}
	return out, nil
}

// up probes the matching instances' /healthz now: 1 when every one answers
// 200, 0 when any does not, noData when none matches.
func (e *Env) up(r *http.Request, keep func(region, version string) bool) SLI {
	ins := e.instanceList(keep)
	if len(ins) == 0 {
		return SLI{At: nowMs(), NoData: true, Detail: "no running instance matches"}
	}
	var (
		mu   sync.Mutex
		down []string
		wg   sync.WaitGroup
	)
	for _, in := range ins {
		wg.Go(func() {
			if ok, why := e.probe(r.Context(), in, probeTimeout); !ok {
				mu.Lock()
				down = append(down, fmt.Sprintf("%s/%s: %s", in.region, in.version, why))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	out := SLI{Value: 1, At: nowMs(), Count: uint64(len(ins)), Detail: fmt.Sprintf("%d instances healthy", len(ins))}
	if len(down) > 0 {
		slices.Sort(down)
		out.Value = 0
		out.Detail = fmt.Sprintf("%d of %d instances unhealthy: %s", len(down), len(ins), strings.Join(down, "; "))
	}
	return out
}

func readJSON(w http.ResponseWriter, r *http.Request, out any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeErr(w, badRequest("body: %v", err))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		msg := strings.TrimPrefix(err.Error(), "json: ")
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			msg = fmt.Sprintf("expected %s, got %s", te.Type, te.Value)
			if te.Field != "" {
				msg = fmt.Sprintf("field %q: %s", te.Field, msg)
			}
		}
		writeErr(w, badRequest("body: %s", msg))
		return false
	}
	return true
}

func respond(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeErr(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(err), ErrorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
