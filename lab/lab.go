// Package lab starts a self-hosted test environment on loopback from the
// real servers installed on the machine: HAProxy in front of two versions of
// a sample service, Prometheus scraping them every second, and a PostgreSQL
// primary with a streaming replica. The self-hosted providers (haproxy,
// prometheus, postgres, http probes) are tested against it, and
// `drillship lab up|down` runs it for people.
//
// Everything the lab starts is written to a state file in Dir, so that
// another process (`drillship lab down`, the postgres provider's Rebuild) can
// find and control it.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/drillship/drillship/activities/unleash/ofunleash"
	"github.com/drillship/drillship/lab/kube"
)

// Part selects what the lab starts. The sample services always run.
type Part int

// Parts of the lab; zero means all of them.
const (
	PartHAProxy Part = 1 << iota
	PartPrometheus
	PartPostgres
	// PartFlags is an Unleash server on the lab's PostgreSQL (so it brings
	// PartPostgres), installed from npm on first use. Not in PartAll: it
	// needs Node and a download.
	PartFlags
	// PartKubernetes is a control plane with kwok nodes in two zones, the
	// lab's objects (namespace web, ...) and a data plane: the lab's HAProxy
	// (so it brings PartHAProxy) following HTTPRoute web. Not in PartAll:
	// its binaries are built first (`drillship lab build`).
	PartKubernetes
	PartAll = PartHAProxy | PartPrometheus | PartPostgres
)

// Options configure a lab.
type Options struct {
	// Dir holds the state file, configs, logs and data. Required. Keep it
	// short: the HAProxy socket lives there and unix socket paths are
	// limited to about 100 bytes.
	Dir   string
	Parts Part // zero: PartAll
	// SyncReplication makes the replica a synchronous standby: a commit is
	// acknowledged only once the replica has it.
	SyncReplication bool
	// DieWithParent ties the servers to this process: they get SIGKILL when
	// it dies, even by a crash or a test timeout. `drillship lab up` leaves it
	// off so that `lab down` can stop them from another process.
	DieWithParent bool
	// Versions of the sample service to run; default v1 and v2 (v1, v2
	// and v3 with PartKubernetes). The first is the stable one at start.
	Versions []string
	// LoadRPS sends this many requests per second through the HAProxy
	// frontend (zero: none), so that canaries get traffic to judge.
	LoadRPS int
	// Host records this process in the state file as the lab host (it
	// holds the sample services): `lab down` from another process asks it
	// to stop. `drillship lab up` sets it for the process it detaches.
	Host   bool
	Logger *slog.Logger
	// Scrape adds jobs to the lab's Prometheus: job name to host:port
	// targets serving /metrics (a drillship worker's --metrics).
	Scrape map[string][]string
	// RuleFiles are Prometheus rule files (alerting, recording) the lab's
	// Prometheus loads and evaluates every second.
	RuleFiles []string
}

// StateFile is the name of the state file in Dir.
const StateFile = "lab-state.json"

// State is what a lab started and where: the contents of the state file.
type State struct {
	Dir        string          `json:"dir"`
	Services   []ServiceInfo   `json:"services"`
	HAProxy    *HAProxyInfo    `json:"haproxy,omitempty"`
	Prometheus *PrometheusInfo `json:"prometheus,omitempty"`
	Postgres   *PostgresInfo   `json:"postgres,omitempty"`
	Unleash    *UnleashInfo    `json:"unleash,omitempty"`
	Kubernetes *KubernetesInfo `json:"kubernetes,omitempty"`
	// ControlURL is the control API of the lab host (release bookkeeping,
	// service faults); HostPID the host when it is a detached process.
	ControlURL string `json:"control,omitempty"`
	HostPID    int    `json:"hostPid,omitempty"`
	// Ready is set once everything has started.
	Ready bool `json:"ready"`
}

// ServiceInfo is one sample-service instance. It runs inside the process
// that started the lab and ends with it.
type ServiceInfo struct {
	Version string `json:"version"`
	URL     string `json:"url"`
}

// Lab is a running lab, owned by the process that started it.
type Lab struct {
	State
	services  map[string]*Service
	daemons   []*daemon
	log       *slog.Logger
	book      releaseBook
	control   *http.Server
	stopLoad  func()
	flags     *ofunleash.Provider
	cluster   *kube.Cluster
	dataplane *dataPlane
}

// Up starts the lab. On error, whatever started is stopped again.
func Up(ctx context.Context, o Options) (*Lab, error) {
	if o.Dir == "" {
		return nil, errors.New("lab: Options.Dir is required")
	}
	if o.Parts == 0 {
		o.Parts = PartAll
	}
	if o.Parts&PartFlags != 0 {
		o.Parts |= PartPostgres
	}
	if o.Parts&PartKubernetes != 0 {
		o.Parts |= PartHAProxy // the data plane
	}
	if len(o.Versions) == 0 {
		o.Versions = []string{"v1", "v2"}
		if o.Parts&PartKubernetes != 0 {
			o.Versions = []string{"v1", "v2", "v3"}
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("lab: dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err == nil {
		return nil, fmt.Errorf("lab: %s already holds a lab (%s): run `drillship lab down` first", dir, StateFile)
	}
	// Fail before starting anything when a binary is missing.
	if err := checkBinaries(o.Parts); err != nil {
		return nil, err
	}
	l := &Lab{State: State{Dir: dir}, services: map[string]*Service{}, log: o.Logger}
	if o.Host {
		l.HostPID = os.Getpid()
	}
	if err := l.up(ctx, o); err != nil {
		if derr := l.Down(); derr != nil {
			err = fmt.Errorf("%w (and while stopping: %v)", err, derr)
		}
		return nil, err
	}
	for _, line := range l.Summary() {
		l.log.Info("lab: " + line)
	}
	return l, nil
}

func checkBinaries(p Part) error {
	if p&PartFlags != 0 {
		p |= PartPostgres
	}
	if p&PartKubernetes != 0 {
		p |= PartHAProxy
	}
	var bins []binary
	if p&PartHAProxy != 0 {
		bins = append(bins, binHAProxy)
	}
	if p&PartPrometheus != 0 {
		bins = append(bins, binPrometheus)
	}
	if p&PartPostgres != 0 {
		bins = append(bins, binInitdb, binPostgres, binPgBasebackup)
	}
	var errs []error
	for _, b := range bins {
		if _, err := lookBinary(b); err != nil {
			errs = append(errs, err)
		}
	}
	if p&PartFlags != 0 {
		errs = append(errs, checkUnleash())
	}
	if p&PartKubernetes != 0 {
		errs = append(errs, checkKubernetes())
	}
	return errors.Join(errs...)
}

func (l *Lab) up(ctx context.Context, o Options) error {
	var svcs []*Service
	for _, v := range o.Versions {
		s, err := startService(v)
		if err != nil {
			return err
		}
		l.services[v] = s
		svcs = append(svcs, s)
		l.Services = append(l.Services, ServiceInfo{Version: v, URL: s.URL})
	}
	l.book.stable = o.Versions[0]
	l.book.artifacts = append([]string{}, o.Versions...)
	if err := l.startControl(); err != nil {
		return err
	}
	// Save after each server so that a crash part-way leaves a state file
	// that `lab down` can clean up from.
	if err := l.save(); err != nil {
		return err
	}
	if o.Parts&PartHAProxy != 0 {
		h, d, err := upHAProxy(ctx, l.Dir, svcs, o.DieWithParent)
		l.track(d)
		l.HAProxy = h
		if err := errors.Join(err, l.save()); err != nil {
			return err
		}
		if o.LoadRPS > 0 {
			l.stopLoad = startLoad(h.Frontend+"/", o.LoadRPS)
		}
	}
	if o.Parts&PartPrometheus != 0 {
		p, d, err := upPrometheus(ctx, l.Dir, prometheusConfig(svcs, l.HAProxy, o.Scrape, o.RuleFiles), o.DieWithParent)
		l.track(d)
		l.Prometheus = p
		if err := errors.Join(err, l.save()); err != nil {
			return err
		}
	}
	if o.Parts&PartPostgres != 0 {
		p, err := upPostgres(ctx, l.Dir, o.SyncReplication, o.DieWithParent)
		l.Postgres = p
		if err := errors.Join(err, l.save()); err != nil {
			return err
		}
	}
	if o.Parts&PartFlags != 0 {
		u, d, err := upUnleash(ctx, l.Dir, l.Postgres, o.DieWithParent)
		l.track(d)
		l.Unleash = u
		if err := errors.Join(err, l.save()); err != nil {
			return err
		}
		if err := l.startFlags(ctx); err != nil {
			return err
		}
	}
	if o.Parts&PartKubernetes != 0 {
		if err := l.upKubernetes(ctx, o); err != nil {
			return err
		}
	}
	l.Ready = true
	return l.save()
}

func (l *Lab) track(d *daemon) {
	if d != nil {
		l.daemons = append(l.daemons, d)
	}
}

// StatePath is the state file of the lab; the postgres provider's `lab`
// setting takes it.
func (l *Lab) StatePath() string { return filepath.Join(l.Dir, StateFile) }

func (l *Lab) save() error {
	b, err := json.MarshalIndent(l.State, "", "  ")
	if err != nil {
		return fmt.Errorf("lab: state: %w", err)
	}
	tmp := l.StatePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("lab: state: %w", err)
	}
	if err := os.Rename(tmp, l.StatePath()); err != nil {
		return fmt.Errorf("lab: state: %w", err)
	}
	return nil
}

// Service returns the sample-service instance of version, nil if none.
func (l *Lab) Service(version string) *Service { return l.services[version] }

// Summary says what runs where, one line per server.
func (l *Lab) Summary() []string { return l.State.Summary() }

// Summary says what runs where, one line per server.
func (s *State) Summary() []string {
	var out []string
	for _, sv := range s.Services {
		out = append(out, fmt.Sprintf("service %s: %s (metrics %s/metrics)", sv.Version, sv.URL, sv.URL))
	}
	if h := s.HAProxy; h != nil {
		out = append(out, fmt.Sprintf("haproxy (pid %d): frontend %s, runtime API %s, backend %s", h.PID, h.Frontend, h.Socket, h.Backend))
		for _, v := range sortedKeys(h.Servers) {
			out = append(out, fmt.Sprintf("haproxy server %s/%s: version %s", h.Backend, h.Servers[v], v))
		}
		out = append(out, fmt.Sprintf("haproxy metrics: http://%s/metrics, stats http://%s/stats", h.Metrics, h.Metrics))
	}
	if s.ControlURL != "" {
		host := "this process"
		if s.HostPID > 0 {
			host = fmt.Sprintf("pid %d", s.HostPID)
		}
		out = append(out, fmt.Sprintf("control API (lab host %s): %s", host, s.ControlURL))
	}
	if p := s.Prometheus; p != nil {
		out = append(out, fmt.Sprintf("prometheus (pid %d): %s (scrape interval 1s)", p.PID, p.URL))
	}
	if u := s.Unleash; u != nil {
		install := "reused"
		if u.InstallMs > 0 {
			install = fmt.Sprintf("installed in %.1fs", float64(u.InstallMs)/1000)
		}
		out = append(out, fmt.Sprintf("unleash %s (pid %d): %s (admin token in the state file), flag %s in %s/%s; %s in %s, healthy in %.1fs",
			UnleashVersion, u.PID, u.URL, u.Feature, u.Project, u.Environment, install, u.Install, float64(u.StartMs)/1000))
	}
	if k := s.Kubernetes; k != nil {
		out = append(out, k.summary()...)
	}
	if p := s.Postgres; p != nil {
		mode := "asynchronous"
		if p.Sync {
			mode = "synchronous"
		}
		for i, n := range p.Nodes {
			role := "primary"
			if i > 0 {
				role = "replica (" + mode + ")"
			}
			out = append(out, fmt.Sprintf("postgres %s (started as %s): %s, data %s", n.Name, role, n.DSN, n.DataDir))
		}
	}
	out = append(out, "state: "+filepath.Join(s.Dir, StateFile))
	return out
}

// KillNode crashes a PostgreSQL node (SIGKILL to all its processes) and
// returns when it was killed.
func (l *Lab) KillNode(name string) (time.Time, error) {
	if l.Postgres == nil {
		return time.Time{}, errors.New("lab: postgres is not part of this lab")
	}
	return l.Postgres.Kill(name)
}

// Down stops everything the lab started and removes its state file. It is
// safe to call twice.
func (l *Lab) Down() error {
	if l.stopLoad != nil {
		l.stopLoad()
		l.stopLoad = nil
	}
	if l.control != nil {
		_ = l.control.Close()
		l.control = nil
	}
	if l.flags != nil {
		l.flags.Close()
		l.flags = nil
	}
	// The data plane before the HAProxy it steers; the cluster reaped here.
	kerr := l.downKubernetes()
	err := errors.Join(kerr, l.State.down())
	for _, d := range l.daemons {
		<-d.done // reap what this process started
	}
	l.daemons = nil
	for _, s := range l.services {
		s.close()
	}
	return err
}

func (s *State) down() error {
	var errs []error
	if s.Kubernetes != nil {
		errs = append(errs, s.Kubernetes.down())
	}
	if s.Unleash != nil {
		// Before its database goes away.
		errs = append(errs, stopPID(s.Unleash.PID, syscall.SIGTERM, 10*time.Second))
	}
	if s.Postgres != nil {
		errs = append(errs, s.Postgres.down())
	}
	if s.Prometheus != nil {
		errs = append(errs, stopPID(s.Prometheus.PID, syscall.SIGTERM, 10*time.Second))
	}
	if s.HAProxy != nil {
		errs = append(errs, stopPID(s.HAProxy.PID, syscall.SIGTERM, 5*time.Second))
		_ = os.Remove(s.HAProxy.Socket)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.Dir, StateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// Load reads the state file at path (a lab directory or the file itself).
func Load(path string) (*State, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, StateFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lab: state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("lab: state %s: %w", path, err)
	}
	return &s, nil
}

// Stop stops the lab whose state is in dir, from any process: what
// `drillship lab down` calls. The sample services end with the process that
// runs them.
//
// A lab with a detached host (`drillship lab up`) is asked to stop with
// SIGTERM: the host stops its servers itself. If it is gone or does not end
// in time, the servers are stopped from the state file.
func Stop(dir string) error {
	s, err := Load(dir)
	if err != nil {
		return err
	}
	if pid := s.HostPID; pid > 0 && pid != os.Getpid() && alive(pid) {
		if err := stopPID(pid, syscall.SIGTERM, 60*time.Second); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(s.Dir, StateFile)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	return s.down()
}

// Settings returns the provider settings that point at this lab, by
// provider name (haproxy, prometheus, postgres, http; kubernetes and
// gateway-api when the lab runs a cluster), ready for a spec's
// target config.
func (s *State) Settings() map[string]map[string]any {
	out := map[string]map[string]any{}
	if h := s.HAProxy; h != nil {
		servers := map[string]any{}
		for v, name := range h.Servers {
			servers[v] = name
		}
		out["haproxy"] = map[string]any{"socket": h.Socket, "backend": h.Backend, "servers": servers}
		out["http"] = map[string]any{"url": h.Frontend + "/"}
	}
	if p := s.Prometheus; p != nil {
		out["prometheus"] = map[string]any{"url": p.URL}
	}
	out["lab"] = map[string]any{"lab": filepath.Join(s.Dir, StateFile)}
	if s.Unleash != nil {
		out["unleash"] = map[string]any{"lab": filepath.Join(s.Dir, StateFile)}
	}
	if s.Kubernetes != nil {
		s.Kubernetes.settings(out)
	}
	if p := s.Postgres; p != nil {
		nodes := map[string]any{}
		for _, n := range p.Nodes {
			nodes[n.Name] = n.DSN
		}
		out["postgres"] = map[string]any{"nodes": nodes, "lab": filepath.Join(s.Dir, StateFile)}
	}
	return out
}
