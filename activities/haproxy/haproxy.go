// Package haproxy is the HAProxy provider: Traffic moves weight between the
// servers of one backend through the runtime API (no reloads), and Signals
// reports a server's health as HAProxy's own checks see it.
package haproxy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
)

// Name is the provider name in specs.
const Name = "haproxy"

// Config is the provider's settings.
//
//	socket: /run/haproxy/admin.sock   # or address: 127.0.0.1:9999 (exactly one)
//	backend: web
//	servers: {v1: web-v1, v2: web-v2}  # drillship backend -> HAProxy server
//	timeout: 5s                        # per runtime-API command, default 5s
type Config struct {
	Socket  string            `json:"socket,omitempty"`
	Address string            `json:"address,omitempty"`
	Backend string            `json:"backend"`
	Servers map[string]string `json:"servers"`
	Timeout string            `json:"timeout,omitempty"`
}

// MaxWeight is the largest weight HAProxy accepts.
const MaxWeight = 256

// Provider returns the haproxy provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:    Name,
		Declare: Declare,
		Traffic: func(cfg map[string]any) (activities.Traffic, error) { return New(cfg) },
		Signals: func(cfg map[string]any) (activities.Signals, error) { return New(cfg) },
	}
}

// Client drives one HAProxy backend.
type Client struct {
	API     RuntimeAPI
	Backend string
	Servers map[string]string
}

// New validates the settings; it does no I/O.
func New(cfg map[string]any) (*Client, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	api := RuntimeAPI{Timeout: 5 * time.Second}
	switch {
	case c.Socket != "" && c.Address != "":
		return nil, errors.New("config: set one of socket and address, not both")
	case c.Socket != "":
		api.Network, api.Address = "unix", c.Socket
	case c.Address != "":
		api.Network, api.Address = "tcp", c.Address
	default:
		return nil, errors.New("config: socket (path of the runtime API unix socket) or address (host:port of its TCP listener) is required")
	}
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("config: timeout %q: want a positive duration such as 5s", c.Timeout)
		}
		api.Timeout = d
	}
	if c.Backend == "" || strings.ContainsAny(c.Backend, " \t/;") {
		return nil, fmt.Errorf("config: backend %q: want an HAProxy backend name", c.Backend)
	}
	if len(c.Servers) == 0 {
		return nil, errors.New("config: servers is required: map each drillship backend (v1, v2, ...) to an HAProxy server name")
	}
	for k, s := range c.Servers {
		if s == "" || strings.ContainsAny(s, " \t/;") {
			return nil, fmt.Errorf("config: servers.%s: %q is not an HAProxy server name", k, s)
		}
	}
	return &Client{API: api, Backend: c.Backend, Servers: c.Servers}, nil
}

func (c *Client) keys() []string {
	keys := make([]string, 0, len(c.Servers))
	for k := range c.Servers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// serverStates reads the backend's servers by name.
func (c *Client) serverStates(ctx context.Context) (map[string]ServerState, error) {
	states, err := c.API.ServersState(ctx, c.Backend)
	if err != nil {
		return nil, err
	}
	byName := map[string]ServerState{}
	for _, s := range states {
		byName[s.Name] = s
	}
	for _, k := range c.keys() {
		if _, ok := byName[c.Servers[k]]; !ok {
			return nil, activities.Permanent(fmt.Errorf("haproxy: backend %s has no server %s (servers.%s)", c.Backend, c.Servers[k], k))
		}
	}
	return byName, nil
}

// Weights reads each configured server's current weight from HAProxy.
func (c *Client) Weights(ctx context.Context) (activities.Weights, error) {
	states, err := c.serverStates(ctx)
	if err != nil {
		return nil, err
	}
	w := activities.Weights{}
	for _, k := range c.keys() {
		w[k] = states[c.Servers[k]].Weight
	}
	return w, nil
}

// SetWeights sets the weight of each named server; weight 0 drains it
// (established connections finish, no new ones). Servers already at their
// weight are left alone.
func (c *Client) SetWeights(ctx context.Context, w activities.Weights) error {
	keys := make([]string, 0, len(w))
	for k, v := range w {
		if _, ok := c.Servers[k]; !ok {
			return activities.Permanent(fmt.Errorf("haproxy: weights: backend %q is not in servers (have: %s)", k, strings.Join(c.keys(), ", ")))
		}
		if v < 0 || v > MaxWeight {
			return activities.Permanent(fmt.Errorf("haproxy: weights.%s: %d is outside 0..%d", k, v, MaxWeight))
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	states, err := c.serverStates(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		name := c.Servers[k]
		if states[name].Weight == w[k] {
			continue
		}
		cmd := fmt.Sprintf("set server %s/%s weight %d", c.Backend, name, w[k])
		out, err := c.API.Do(ctx, cmd)
		if err != nil {
			return err
		}
		if err := answerError(cmd, out); err != nil {
			return err
		}
	}
	// Read back: HAProxy answers nothing on success, so confirm it took.
	got, err := c.Weights(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if got[k] != w[k] {
			return fmt.Errorf("haproxy: %s/%s: weight is %d after setting %d", c.Backend, c.Servers[k], got[k], w[k])
		}
	}
	return nil
}

// Sample answers metric "up" for the server of Scope["version"] (a key of
// servers) or Scope["server"] (an HAProxy server name): 1 when HAProxy's
// health check has it up (also when drained: healthy, just without new
// traffic), 0 otherwise. Detail carries HAProxy's status and check result.
func (c *Client) Sample(ctx context.Context, q activities.Query) (activities.Sample, error) {
	if q.Metric != activities.MetricUp {
		return activities.Sample{}, activities.Permanent(fmt.Errorf("haproxy: metric %q: only %q is offered", q.Metric, activities.MetricUp))
	}
	server := q.Scope["server"]
	if v, ok := q.Scope["version"]; ok {
		s, ok := c.Servers[v]
		if !ok {
			return activities.Sample{}, activities.Permanent(fmt.Errorf("haproxy: scope.version %q is not in servers (have: %s)", v, strings.Join(c.keys(), ", ")))
		}
		server = s
	}
	if server == "" {
		return activities.Sample{}, activities.Permanent(errors.New("haproxy: scope needs version (a key of servers) or server (an HAProxy server name)"))
	}
	st, err := c.API.Stat(ctx, c.Backend, server)
	if err != nil {
		return activities.Sample{}, err
	}
	at := time.Now().UnixMilli()
	s := activities.Sample{At: at, Detail: fmt.Sprintf("%s/%s: status %s", c.Backend, server, st.Status)}
	if st.CheckStatus != "" {
		s.Detail += fmt.Sprintf(", check %s %s", st.CheckStatus, st.CheckDesc)
	}
	if healthy(st.Status) {
		s.Value = 1
	}
	return s, nil
}

// healthy reads a `show stat` status. "UP 1/2" is up but failing checks;
// "DOWN 1/2" is down but passing them: the first word is what HAProxy acts on.
func healthy(status string) bool {
	first, _, _ := strings.Cut(status, " ")
	switch first {
	case "UP", "DRAIN", "NOLB", "no":
		// "no check": HAProxy does not check it and treats it as up.
		return true
	}
	return false
}
