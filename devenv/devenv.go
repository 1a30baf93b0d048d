// Package devenv runs drillship's embedded default in one process: the real
// Temporal server and UI, the local environment, and a worker. `drillship
// dev`, `drillship demo`, the end-to-end tests and the benchmarks use it.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/stack"
	"github.com/drillship/drillship/worker"
	"github.com/drillship/drillship/workflows"
)

// Options configure the embedded stack.
type Options struct {
	DBFile   string // "" keeps Temporal's state in memory
	Port     int    // frontend port; 0 picks one
	UI       bool
	UIPort   int
	Local    localenv.Options
	NoLocal  bool // no local environment (a worker against other providers)
	NoWorker bool // the caller runs its own worker (crash tests)
	Worker   worker.Options
	Logger   *slog.Logger // SDK and worker logs; nil discards
	// ServerLogger gets the Temporal server's own logs; nil discards them.
	ServerLogger *slog.Logger
	// Codec, when set, is the codec endpoint the UI uses.
	CodecEndpoint string
	// MetricsHandler receives the SDK's metrics (pipeline.Metrics); nil: none.
	MetricsHandler client.MetricsHandler
}

// Env is a running embedded stack.
type Env struct {
	Stack    *stack.Stack
	Local    *localenv.Env
	Client   client.Client
	Worker   sdkworker.Worker
	Registry *activities.Registry
	Acts     *activities.Activities
	closers  []func() error
}

// Start starts the server, the local environment and a worker.
func Start(ctx context.Context, o Options) (e *Env, err error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e = &Env{}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	e.Stack, err = stack.Start(ctx, stack.Options{
		Port: o.Port, UI: o.UI, UIPort: o.UIPort, DBFile: o.DBFile,
		SearchAttributes: workflows.SearchAttributes(), Logger: o.ServerLogger, CodecEndpoint: o.CodecEndpoint,
	})
	if err != nil {
		return e, fmt.Errorf("start embedded Temporal: %w", err)
	}
	e.closers = append(e.closers, e.Stack.Stop)
	if !o.NoLocal {
		lo := o.Local
		if lo.Logger == nil {
			lo.Logger = logger
		}
		e.Local, err = localenv.Start(ctx, lo)
		if err != nil {
			return e, fmt.Errorf("start local environment: %w", err)
		}
		e.closers = append(e.closers, e.Local.Close)
	}
	e.Client, err = client.DialContext(ctx, client.Options{
		HostPort: e.Stack.Address(), Namespace: e.Stack.Namespace(),
		Logger: sdklog.NewStructuredLogger(logger), MetricsHandler: o.MetricsHandler,
	})
	if err != nil {
		return e, fmt.Errorf("dial embedded Temporal: %w", err)
	}
	e.closers = append(e.closers, func() error { e.Client.Close(); return nil })
	e.Registry = worker.Providers(worker.ProviderOptions{LocalEnvURL: e.LocalURL()})
	if !o.NoWorker {
		wo := o.Worker
		if wo.LocalEnvURL == "" {
			wo.LocalEnvURL = e.LocalURL()
		}
		e.Worker, e.Acts = worker.New(e.Client, e.Registry, logger, wo)
		if err := e.Worker.Start(); err != nil {
			return e, fmt.Errorf("start worker: %w", err)
		}
		e.closers = append(e.closers, func() error { e.Worker.Stop(); return nil })
	}
	return e, nil
}

// LocalURL is the local environment's control API, or "".
func (e *Env) LocalURL() string {
	if e.Local == nil {
		return ""
	}
	return e.Local.URL()
}

// Close stops everything in reverse order of start.
func (e *Env) Close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		if err := e.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	e.closers = nil
	return errors.Join(errs...)
}
