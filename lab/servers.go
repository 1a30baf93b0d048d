package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// HAProxyInfo is the lab's HAProxy: a frontend in front of the sample
// services, an admin runtime-API socket and a stats/metrics frontend.
type HAProxyInfo struct {
	PID      int    `json:"pid"`
	Config   string `json:"config"`
	Log      string `json:"log"`
	Socket   string `json:"socket"`   // runtime API (admin level), a unix socket
	Frontend string `json:"frontend"` // http://127.0.0.1:port, balanced over the services
	Metrics  string `json:"metrics"`  // 127.0.0.1:port serving /metrics (HAProxy's exporter) and /stats
	Backend  string `json:"backend"`
	// Servers maps a version to its server name in Backend.
	Servers map[string]string `json:"servers"`
}

// Lab HAProxy names.
const (
	HAProxyBackend = "web"
)

func haproxyConfig(h *HAProxyInfo, feAddr string, services []*Service) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    stats socket %s mode 600 level admin
    stats timeout 30s

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s

frontend main
    bind %s
    default_backend %s

frontend stats
    bind %s
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /stats

backend %s
    balance roundrobin
    option httpchk GET /healthz
    default-server check inter 500ms fall 2 rise 1
`, h.Socket, feAddr, h.Backend, h.Metrics, h.Backend)
	for _, s := range services {
		// v1 serves everything at first: the stable version before a canary.
		w := 0
		if s == services[0] {
			w = 100
		}
		fmt.Fprintf(&b, "    server %s %s weight %d\n", h.Servers[s.Version], strings.TrimPrefix(s.URL, "http://"), w)
	}
	return b.String()
}

func upHAProxy(ctx context.Context, dir string, services []*Service, tied bool) (*HAProxyInfo, *daemon, error) {
	bin, err := lookBinary(binHAProxy)
	if err != nil {
		return nil, nil, err
	}
	fe, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	st, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	h := &HAProxyInfo{
		Config:   filepath.Join(dir, "haproxy.cfg"),
		Log:      filepath.Join(dir, "haproxy.log"),
		Socket:   filepath.Join(dir, "haproxy.sock"),
		Frontend: fmt.Sprintf("http://127.0.0.1:%d", fe),
		Metrics:  fmt.Sprintf("127.0.0.1:%d", st),
		Backend:  HAProxyBackend,
		Servers:  map[string]string{},
	}
	if len(h.Socket) > 100 {
		return nil, nil, fmt.Errorf("lab: socket path %s is longer than a unix socket allows (about 100 bytes): use a shorter Dir", h.Socket)
	}
	for _, s := range services {
		h.Servers[s.Version] = HAProxyBackend + "-" + s.Version
	}
	if err := os.WriteFile(h.Config, []byte(haproxyConfig(h, fmt.Sprintf("127.0.0.1:%d", fe), services)), 0o644); err != nil {
		return nil, nil, fmt.Errorf("lab: %w", err)
	}
	// -db keeps HAProxy in the foreground so that its pid is the one we hold.
	d, err := startDaemon([]string{bin, "-db", "-f", h.Config}, h.Log, tied)
	if err != nil {
		return nil, nil, err
	}
	h.PID = d.cmd.Process.Pid
	if err := waitReady(ctx, d, h.Log, 15*time.Second, func() bool {
		c, err := net.DialTimeout("unix", h.Socket, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}); err != nil {
		return h, d, fmt.Errorf("lab: haproxy: %w", err)
	}
	return h, d, nil
}

// PrometheusInfo is the lab's Prometheus, scraping every second.
type PrometheusInfo struct {
	PID    int    `json:"pid"`
	URL    string `json:"url"`
	Config string `json:"config"`
	Log    string `json:"log"`
}

func prometheusConfig(services []*Service, h *HAProxyInfo, scrape map[string][]string, rules []string) string {
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n")
	if len(rules) > 0 {
		b.WriteString("rule_files:\n")
		for _, r := range rules {
			if abs, err := filepath.Abs(r); err == nil {
				r = abs // the config lives in the lab's dir, not the caller's
			}
			fmt.Fprintf(&b, "  - %q\n", r)
		}
	}
	b.WriteString("scrape_configs:\n  - job_name: services\n    static_configs:\n      - targets:\n")
	for _, s := range services {
		fmt.Fprintf(&b, "          - %q\n", strings.TrimPrefix(s.URL, "http://"))
	}
	if h != nil {
		fmt.Fprintf(&b, "  - job_name: haproxy\n    static_configs:\n      - targets: [%q]\n", h.Metrics)
	}
	for _, job := range sortedKeys(scrape) {
		fmt.Fprintf(&b, "  - job_name: %q\n    static_configs:\n      - targets:\n", job)
		for _, t := range scrape[job] {
			fmt.Fprintf(&b, "          - %q\n", t)
		}
	}
	return b.String()
}

func upPrometheus(ctx context.Context, dir, config string, tied bool) (*PrometheusInfo, *daemon, error) {
	bin, err := lookBinary(binPrometheus)
	if err != nil {
		return nil, nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	p := &PrometheusInfo{
		URL:    fmt.Sprintf("http://127.0.0.1:%d", port),
		Config: filepath.Join(dir, "prometheus.yml"),
		Log:    filepath.Join(dir, "prometheus.log"),
	}
	if err := os.WriteFile(p.Config, []byte(config), 0o644); err != nil {
		return nil, nil, fmt.Errorf("lab: %w", err)
	}
	d, err := startDaemon([]string{bin,
		"--config.file=" + p.Config,
		"--storage.tsdb.path=" + filepath.Join(dir, "prometheus-data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--storage.tsdb.retention.time=1d",
		"--log.level=warn",
	}, p.Log, tied)
	if err != nil {
		return nil, nil, err
	}
	p.PID = d.cmd.Process.Pid
	client := &http.Client{Timeout: time.Second}
	if err := waitReady(ctx, d, p.Log, 30*time.Second, func() bool {
		resp, err := client.Get(p.URL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		return p, d, fmt.Errorf("lab: prometheus: %w", err)
	}
	return p, d, nil
}

// waitReady polls ready until it holds, the daemon exits (the error then
// carries the end of its log) or d passes.
func waitReady(ctx context.Context, dm *daemon, logPath string, d time.Duration, ready func() bool) error {
	deadline := time.Now().Add(d)
	for !ready() {
		select {
		case <-dm.done:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("exited at start: %s", strings.TrimSpace(tail(string(b), 1500)))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s (log: %s)", d, logPath)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
