// Package stack runs a real Temporal server (and optionally the Temporal UI)
// inside the current process, backed by SQLite in memory or in a file. It is
// what `drillship dev`, `drillship demo` and the end-to-end tests run on, so
// nothing needs a Temporal binary or internet access.
package stack

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/temporalio/cli/temporalcli/devserver"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

// Options configures Start. The zero value starts a headless server on a free
// loopback port with an in-memory database and the "default" namespace.
type Options struct {
	Namespace        string                            // default "default"
	IP               string                            // default 127.0.0.1
	Port             int                               // frontend gRPC port; 0 = pick a free one
	UI               bool                              // start the Temporal UI too
	UIPort           int                               // 0 = pick a free one
	DBFile           string                            // "" = in memory; a path keeps state across restarts
	SearchAttributes map[string]enums.IndexedValueType // registered at start (idempotent across restarts with DBFile)
	CodecEndpoint    string                            // optional, passed to the UI (payload codec server URL)
	Logger           *slog.Logger                      // server logs go here at Warn+; nil = discard
}

// Stack is a running embedded Temporal server.
type Stack struct {
	server    *devserver.Server
	address   string
	uiURL     string
	namespace string
	logger    *slog.Logger

	stopOnce sync.Once
	stopErr  error
}

// readyTimeout bounds how long Start waits for the frontend and UI to answer
// when the caller's context has no deadline of its own.
const readyTimeout = 30 * time.Second

// dynamicConfig is tuned for a single-process server running fast tests and
// many concurrent workflows. The first three mirror `temporal server
// start-dev`; the rest lift limits that a busy test or demo would hit.
func dynamicConfig() map[string]any {
	return map[string]any{
		// Search attributes are visible as soon as they are added.
		"system.forceSearchAttributesCacheRefreshOnRead": true,
		// That cache bypass costs persistence QPS; lift the limits to match.
		"frontend.persistenceMaxQPS": 10000,
		"history.persistenceMaxQPS":  45000,
		// One partition per task queue: a poller sees every task at once
		// instead of waiting for forwarding between partitions.
		"matching.numTaskqueueReadPartitions":  1,
		"matching.numTaskqueueWritePartitions": 1,
		// Many workers, pollers and list calls at once must not be throttled.
		"frontend.rps":                     20000,
		"frontend.namespaceRPS":            20000,
		"frontend.namespaceCount":          10000,
		"frontend.namespaceRPS.visibility": 1000,
		"history.rps":                      20000,
		"matching.rps":                     20000,
	}
}

// Start starts the server and returns once the frontend serves the namespace
// (and the UI answers, when asked for). Custom search attributes are present
// when it returns, also when DBFile already held them or held a namespace
// created without them.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.IP == "" || o.IP == "localhost" {
		// The server needs an IP, not a name.
		o.IP = "127.0.0.1"
	}
	if net.ParseIP(o.IP) == nil {
		return nil, fmt.Errorf("stack: IP %q is not an IP address", o.IP)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	port, err := pickPort(o.IP, o.Port, "Port")
	if err != nil {
		return nil, err
	}
	namespaces := []string{o.Namespace}
	if o.Namespace != "default" {
		// The UI opens on "default"; keep it there as start-dev does.
		namespaces = append(namespaces, "default")
	}
	opts := devserver.StartOptions{
		FrontendIP:             o.IP,
		FrontendPort:           port,
		Namespaces:             namespaces,
		ClusterID:              uuid.NewString(),
		MasterClusterName:      "active",
		CurrentClusterName:     "active",
		InitialFailoverVersion: 1,
		Logger:                 logger,
		LogLevel:               slog.LevelWarn,
		DatabaseFile:           o.DBFile,
		DynamicConfigValues:    dynamicConfig(),
		SearchAttributes:       o.SearchAttributes,
	}
	if o.DBFile != "" {
		// WAL lets readers (visibility, UI) run beside the writer; NORMAL
		// sync is safe against a crash of this process, which is what the
		// file is for.
		opts.SqlitePragmas = map[string]string{"journal_mode": "wal", "synchronous": "1"}
	}
	if o.UI {
		uiPort, err := pickPort(o.IP, o.UIPort, "UIPort")
		if err != nil {
			return nil, err
		}
		opts.UIIP, opts.UIPort, opts.UICodecEndpoint = o.IP, uiPort, o.CodecEndpoint
	}

	srv, err := devserver.Start(opts)
	if err != nil {
		return nil, fmt.Errorf("stack: start Temporal server on %s:%d: %w", o.IP, port, err)
	}
	s := &Stack{
		server:    srv,
		address:   net.JoinHostPort(o.IP, strconv.Itoa(port)),
		namespace: o.Namespace,
		logger:    logger,
	}
	if o.UI {
		s.uiURL = "http://" + net.JoinHostPort(o.IP, strconv.Itoa(opts.UIPort))
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	if err := s.waitReady(ctx, o.SearchAttributes); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// pickPort returns port when it is free, or a free one when port is 0. A
// busy port is an error here because the UI server exits the process when it
// cannot bind.
func pickPort(ip string, port int, field string) (int, error) {
	if port == 0 {
		p, err := devserver.GetFreePort(ip)
		if err != nil {
			return 0, fmt.Errorf("stack: pick a free %s on %s: %w", field, ip, err)
		}
		return p, nil
	}
	if port < 0 || port > 65535 {
		return 0, fmt.Errorf("stack: %s %d out of range: want 0 (pick one) or 1..65535", field, port)
	}
	if err := devserver.CheckPortFree(ip, port); err != nil {
		return 0, fmt.Errorf("stack: %s %d on %s is not free: %w", field, port, ip, err)
	}
	return port, nil
}

// waitReady dials the frontend until it answers health checks and describes
// the namespace, registers the search attributes, then waits for the UI.
func (s *Stack) waitReady(ctx context.Context, attrs map[string]enums.IndexedValueType) error {
	// Dialing is retried too: the SDK checks the server while dialing.
	var c client.Client
	var lastErr error
	for {
		if c == nil {
			c, lastErr = client.DialContext(ctx, client.Options{
				HostPort:  s.address,
				Namespace: s.namespace,
				Logger:    sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
			})
		}
		if c != nil {
			lastErr = probeFrontend(ctx, c, s.namespace)
			if lastErr == nil {
				break
			}
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			if c != nil {
				c.Close()
			}
			return fmt.Errorf("stack: frontend %s not ready: %w (last: %w)", s.address, err, lastErr)
		}
	}
	defer c.Close()
	if err := RegisterSearchAttributes(ctx, c, s.namespace, attrs); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	if s.uiURL == "" {
		return nil
	}
	for {
		lastErr = probeHTTP(ctx, s.uiURL)
		if lastErr == nil {
			return nil
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("stack: UI %s not ready: %w (last: %w)", s.uiURL, err, lastErr)
		}
	}
}

func probeFrontend(ctx context.Context, c client.Client, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("check health: %w", err)
	}
	_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("describe namespace %q: %w", namespace, err)
	}
	return nil
}

func probeHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Address is the host:port of the frontend gRPC service.
func (s *Stack) Address() string { return s.address }

// UIURL is the base URL of the Temporal UI, or "" when it was not started.
func (s *Stack) UIURL() string { return s.uiURL }

// Namespace is the namespace the stack was started for.
func (s *Stack) Namespace() string { return s.namespace }

// Stop stops the UI and the server and checks that the frontend port is free
// again. It is safe to call more than once; later calls return the first
// result.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		s.server.Stop()
		s.stopErr = waitPortFree(s.address, 5*time.Second)
	})
	return s.stopErr
}

// waitPortFree waits until addr can be bound again, so that a restart on the
// same port (a DBFile restart, a test) does not race the old listener.
func waitPortFree(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			return l.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stack: frontend port %s still bound %s after stop: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
