package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/drillship/drillship/retention"
)

// The sample services live in the process that started the lab (the lab
// host). The control API lets other processes (a worker, `drillship lab
// down`) deploy, stop and promote their versions and break them on purpose.

// Release is what the lab's release bookkeeping says about the sample
// service; the JSON matches activities.ReleaseState.
type Release struct {
	Stable    string   `json:"stable"`
	Running   []string `json:"running"`
	Artifacts []string `json:"artifacts"`
}

// ServiceStatus is one sample-service instance as the control API reports it.
type ServiceStatus struct {
	Version   string  `json:"version"`
	URL       string  `json:"url"`
	ErrorRate float64 `json:"errorRate"`
	Down      bool    `json:"down"`
	// FeatureErrorRate: the share of requests through the lab flag's
	// feature that fail.
	FeatureErrorRate float64 `json:"featureErrorRate,omitempty"`
}

// ServiceChange changes a service; nil fields are left as they are.
type ServiceChange struct {
	Version   string   `json:"version"`
	ErrorRate *float64 `json:"errorRate,omitempty"`
	Down      *bool    `json:"down,omitempty"`
	// FeatureErrorRate breaks (or mends) the lab flag's feature.
	FeatureErrorRate *float64 `json:"featureErrorRate,omitempty"`
}

// releaseBook keeps stable and artifacts; running is read from the services.
type releaseBook struct {
	mu        sync.Mutex
	stable    string
	artifacts []string         // oldest first
	promoted  map[string]int64 // version -> order of its latest promotion; nil until the first one
	promotes  int64
}

// promote records version as stable and the order of its promotion, which
// pruning needs to keep the rollback target. The initial stable version
// counts as the first promotion.
func (b *releaseBook) promote(version string) {
	if b.promoted == nil {
		b.promoted, b.promotes = map[string]int64{b.stable: 1}, 1
	}
	if b.stable == version {
		return
	}
	b.stable = version
	b.promotes++
	b.promoted[version] = b.promotes
}

// ErrUnknownVersion is returned for a version the lab does not run.
var ErrUnknownVersion = errors.New("lab: unknown version")

func (l *Lab) versions() []string {
	out := make([]string, 0, len(l.Services))
	for _, s := range l.Services {
		out = append(out, s.Version)
	}
	return out
}

func (l *Lab) service(version string) (*Service, error) {
	s := l.services[version]
	if s == nil {
		return nil, fmt.Errorf("%w %q (the lab runs: %s)", ErrUnknownVersion, version, strings.Join(l.versions(), ", "))
	}
	return s, nil
}

// ReleaseState reports the stable version, the versions serving (not
// stopped) and the artifacts kept.
func (l *Lab) ReleaseState() Release {
	l.book.mu.Lock()
	defer l.book.mu.Unlock()
	r := Release{Stable: l.book.stable, Running: []string{}, Artifacts: append([]string{}, l.book.artifacts...)}
	for _, v := range l.versions() {
		if !l.services[v].down.Load() {
			r.Running = append(r.Running, v)
		}
	}
	return r
}

// ReleaseOp deploys (serves again), stops (fails health checks and every
// request, as a stopped instance would) or promotes version. Each is
// idempotent.
func (l *Lab) ReleaseOp(op, version string) error {
	s, err := l.service(version)
	if err != nil {
		return err
	}
	l.book.mu.Lock()
	defer l.book.mu.Unlock()
	switch op {
	case "deploy":
		s.SetDown(false)
		if !contains(l.book.artifacts, version) {
			l.book.artifacts = append(l.book.artifacts, version)
		}
	case "stop":
		s.SetDown(true)
	case "promote":
		l.book.promote(version)
		if !contains(l.book.artifacts, version) {
			l.book.artifacts = append(l.book.artifacts, version)
		}
	default:
		return fmt.Errorf("lab: release op %q is not one of deploy, stop, promote", op)
	}
	return nil
}

// Prune forgets the artifacts that neither current ("" for the stable
// version) nor a rollback needs, by the rule of package retention: current,
// the version promoted before it, running ones and the newest promoted up to
// keep stay; failed canaries go first.
func (l *Lab) Prune(current string, keep int) []string {
	l.book.mu.Lock()
	defer l.book.mu.Unlock()
	l.book.promote(l.book.stable) // records the initial stable version
	if current == "" {
		current = l.book.stable
	}
	arts := make([]retention.Artifact, len(l.book.artifacts))
	for i, a := range l.book.artifacts {
		s := l.services[a]
		arts[i] = retention.Artifact{
			Version: a, Deployed: int64(i), Promoted: l.book.promoted[a],
			Running: a == l.book.stable || s != nil && !s.down.Load(),
		}
	}
	kept, removed := retention.Plan(arts, current, keep)
	for _, a := range removed {
		delete(l.book.promoted, a)
	}
	l.book.artifacts = kept
	return removed
}

// ChangeService applies a change to one service.
func (l *Lab) ChangeService(ch ServiceChange) error {
	s, err := l.service(ch.Version)
	if err != nil {
		return err
	}
	if ch.FeatureErrorRate != nil && (*ch.FeatureErrorRate < 0 || *ch.FeatureErrorRate > 1) {
		return fmt.Errorf("lab: featureErrorRate %g: want 0..1", *ch.FeatureErrorRate)
	}
	if ch.ErrorRate != nil {
		if *ch.ErrorRate < 0 || *ch.ErrorRate > 1 {
			return fmt.Errorf("lab: errorRate %g: want 0..1", *ch.ErrorRate)
		}
		s.SetErrorRate(*ch.ErrorRate)
	}
	if ch.FeatureErrorRate != nil {
		s.SetFeatureErrorRate(*ch.FeatureErrorRate)
	}
	if ch.Down != nil {
		s.SetDown(*ch.Down)
	}
	return nil
}

// ServiceStatuses reports every service.
func (l *Lab) ServiceStatuses() []ServiceStatus {
	var out []ServiceStatus
	for _, v := range l.versions() {
		s := l.services[v]
		out = append(out, ServiceStatus{Version: v, URL: s.URL, ErrorRate: s.ErrorRate(), Down: s.down.Load(), FeatureErrorRate: s.FeatureErrorRate()})
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (l *Lab) startControl() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("lab: control API: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/release", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, l.ReleaseState()) })
	mux.HandleFunc("POST /api/release/{op}", func(w http.ResponseWriter, r *http.Request) {
		op := r.PathValue("op")
		if op == "prune" {
			var in struct {
				Keep    int    `json:"keep"`
				Current string `json:"current"`
			}
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Keep < 1 {
				http.Error(w, "want {\"keep\": n, \"current\": version} with n >= 1", http.StatusBadRequest)
				return
			}
			writeJSON(w, map[string][]string{"pruned": l.Prune(in.Current, in.Keep)})
			return
		}
		var in struct {
			Version string `json:"version"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := l.ReleaseOp(op, in.Version); err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrUnknownVersion) {
				status = http.StatusNotFound
			}
			http.Error(w, err.Error(), status)
			return
		}
		writeJSON(w, l.ReleaseState())
	})
	mux.HandleFunc("GET /api/services", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, l.ServiceStatuses()) })
	mux.HandleFunc("POST /api/services", func(w http.ResponseWriter, r *http.Request) {
		var ch ServiceChange
		if err := json.NewDecoder(r.Body).Decode(&ch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := l.ChangeService(ch); err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrUnknownVersion) {
				status = http.StatusNotFound
			}
			http.Error(w, err.Error(), status)
			return
		}
		writeJSON(w, l.ServiceStatuses())
	})
	l.control = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	l.ControlURL = "http://" + ln.Addr().String()
	go func() { _ = l.control.Serve(ln) }()
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ControlClient talks to a lab's control API from any process.
type ControlClient struct {
	URL  string
	HTTP *http.Client
}

// Control returns a client of the lab's control API.
func (s *State) Control() (*ControlClient, error) {
	if s.ControlURL == "" {
		return nil, fmt.Errorf("lab: the lab in %s has no control API (started by an older drillship?)", s.Dir)
	}
	return &ControlClient{URL: s.ControlURL, HTTP: &http.Client{Timeout: 10 * time.Second}}, nil
}

// Release reads the release bookkeeping.
func (c *ControlClient) Release(ctx context.Context) (Release, error) {
	var r Release
	return r, c.do(ctx, http.MethodGet, "/api/release", nil, &r)
}

// ReleaseOp deploys, stops or promotes version.
func (c *ControlClient) ReleaseOp(ctx context.Context, op, version string) error {
	return c.do(ctx, http.MethodPost, "/api/release/"+op, map[string]string{"version": version}, nil)
}

// Prune forgets the artifacts neither current nor its rollback needs and
// returns them (see Lab.Prune).
func (c *ControlClient) Prune(ctx context.Context, current string, keep int) ([]string, error) {
	var out struct {
		Pruned []string `json:"pruned"`
	}
	err := c.do(ctx, http.MethodPost, "/api/release/prune", map[string]any{"keep": keep, "current": current}, &out)
	return out.Pruned, err
}

// Services reports every sample-service instance.
func (c *ControlClient) Services(ctx context.Context) ([]ServiceStatus, error) {
	var out []ServiceStatus
	return out, c.do(ctx, http.MethodGet, "/api/services", nil, &out)
}

// ChangeService sets a service's error rate or takes it down or up.
func (c *ControlClient) ChangeService(ctx context.Context, ch ServiceChange) error {
	return c.do(ctx, http.MethodPost, "/api/services", ch, nil)
}

// StatusError is an answer of the control API other than 200.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return fmt.Sprintf("lab control API: %d: %s", e.Code, e.Msg) }

// Is makes a 404 match ErrUnknownVersion.
func (e *StatusError) Is(target error) bool {
	return target == ErrUnknownVersion && e.Code == http.StatusNotFound
}

func (c *ControlClient) do(ctx context.Context, method, path string, in, out any) error {
	var body *bytes.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return fmt.Errorf("lab control API: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("lab control API %s: %w (is the lab host running? `drillship lab up`)", c.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var msg bytes.Buffer
		_, _ = msg.ReadFrom(resp.Body)
		return &StatusError{Code: resp.StatusCode, Msg: strings.TrimSpace(msg.String())}
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("lab control API %s: %w", path, err)
	}
	return nil
}

// DirEnv names the environment variable holding the default lab directory.
const DirEnv = "DRILLSHIP_LAB_DIR"

// DefaultRef is the lab reference that means the default lab directory.
const DefaultRef = "default"

// DefaultDir is $DRILLSHIP_LAB_DIR, else ~/.drillship/lab.
func DefaultDir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = os.TempDir()
	}
	return filepath.Join(home, ".drillship", "lab")
}

// ErrNoLab says no lab state was found where a reference points.
var ErrNoLab = errors.New("lab: no running lab")

// Resolve reads the state of the lab that ref names: "default" (the default
// directory, read now: the process calling it decides) or a lab directory
// or state file path. A lab that is not there wraps ErrNoLab.
func Resolve(ref string) (*State, error) {
	path := ref
	if ref == "" || ref == DefaultRef {
		path = DefaultDir()
	}
	s, err := Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s: start one with `drillship lab up` (and export %s)", ErrNoLab, path, DirEnv)
	}
	return s, err
}

// CheckRef validates a lab reference without reading it: "default" or an
// absolute path.
func CheckRef(ref string) error {
	if ref == DefaultRef || filepath.IsAbs(ref) {
		return nil
	}
	return fmt.Errorf("lab %q: want %q (the lab in $%s, else ~/.drillship/lab) or an absolute path of a lab directory or state file", ref, DefaultRef, DirEnv)
}

// CheckBinaries reports every server binary that parts (zero: all) need and
// the machine lacks, each with the Debian package that ships it.
func CheckBinaries(parts Part) error {
	if parts == 0 {
		parts = PartAll
	}
	return checkBinaries(parts)
}

// HostAlive reports whether the lab host recorded in s still runs.
func (s *State) HostAlive() bool { return s.HostPID > 0 && alive(s.HostPID) }
