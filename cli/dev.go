package cli

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	ucli "github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/stack"
	"github.com/drillship/drillship/worker"
	"github.com/drillship/drillship/workflows"
)

func devCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "dev",
		Usage: "run the embedded Temporal server and UI, a worker and the local environment until Ctrl-C",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "db-file", Usage: "keep Temporal's state in this SQLite file across restarts (default: in memory)"},
			&ucli.IntFlag{Name: "port", Value: 7233, Usage: "Temporal frontend port (0 picks a free one)"},
			&ucli.IntFlag{Name: "ui-port", Value: 8233, Usage: "Temporal UI port (0 picks a free one)"},
			&ucli.IntFlag{Name: "rps", Value: 50, Usage: "load on the local environment, requests per second"},
			&ucli.BoolFlag{Name: "no-worker", Usage: "run no worker: dev prints the drillship worker command to run as its own process, to kill and restart at will"},
			metricsFlag, doraWindowFlag,
		},
		Action: func(c *ucli.Context) error {
			log := logger(c)
			noWorker := c.Bool("no-worker")
			m, stopMetrics, err := startMetrics(c)
			if err != nil {
				return err
			}
			defer stopMetrics()
			o := devenv.Options{
				DBFile: c.String("db-file"), Port: c.Int("port"), UI: true, UIPort: c.Int("ui-port"),
				NoWorker: noWorker, Logger: log, ServerLogger: serverLogger(c),
			}
			if m != nil {
				o.MetricsHandler = m.SDKHandler()
				o.Worker.Interceptors = append(o.Worker.Interceptors, m.Interceptor())
			}
			env, err := devenv.Start(c.Context, o)
			if err != nil {
				return err
			}
			defer env.Close()
			if m != nil {
				watchDORA(c.Context, c, m, env.Client, log)
			}
			env.Local.SetLoad(float64(c.Int("rps")) / 50)
			w := c.App.Writer
			fmt.Fprintf(w, "drillship dev is ready\n")
			fmt.Fprintf(w, "  Temporal frontend  %s (namespace %s)\n", env.Stack.Address(), env.Stack.Namespace())
			fmt.Fprintf(w, "  Temporal UI        %s\n", env.Stack.UIURL())
			for _, l := range env.Local.Summary() {
				fmt.Fprintf(w, "  local env          %s\n", l)
			}
			if noWorker {
				fmt.Fprintf(w, "  worker             none: run one (or several, and kill them) with\n")
				fmt.Fprintf(w, "    %s\n", workerCommandLine(env.Stack.Address(), env.Stack.Namespace(), env.LocalURL()))
			}
			fmt.Fprintf(w, "\nTry, in another shell:\n")
			fmt.Fprintf(w, "  export TEMPORAL_ADDRESS=%s DRILLSHIP_LOCAL_ENV=%s\n", env.Stack.Address(), env.LocalURL())
			fmt.Fprintf(w, "  drillship deploy start web-canary --version v2 --wait\n")
			fmt.Fprintf(w, "  drillship drill run region-failover --wait\n")
			fmt.Fprintf(w, "Ctrl-C stops everything.\n")
			<-c.Context.Done()
			fmt.Fprintln(w, "stopping")
			return nil
		},
	}
}

// workerCommandLine is the command that runs a worker against dev's server
// and local environment, with this very binary when it can be found.
func workerCommandLine(address, namespace, localURL string) string {
	exe := "drillship"
	if p, err := os.Executable(); err == nil {
		exe = p
	}
	args := []string{exe, "worker", "--address", address, "--namespace", namespace, "--local-env", localURL}
	for i, a := range args {
		if strings.ContainsAny(a, " \t'\"$\\") {
			args[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(args, " ")
}

func workerCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "worker",
		Usage: "run only a worker against any Temporal (self-hosted or Temporal Cloud)",
		Flags: withClientFlags(localFlag,
			&ucli.BoolFlag{Name: "register-search-attributes", Usage: "add drillship's search attributes to the namespace first (needs operator rights)"},
			&ucli.IntFlag{Name: "max-activities", Usage: "concurrent activities (0: SDK default)"},
			metricsFlag, doraWindowFlag,
		),
		Action: func(c *ucli.Context) error {
			log := logger(c)
			m, stopMetrics, err := startMetrics(c)
			if err != nil {
				return err
			}
			defer stopMetrics()
			opts := worker.Options{MaxActivities: c.Int("max-activities"), LocalEnvURL: c.String("local-env")}
			var mh client.MetricsHandler
			if m != nil {
				mh = m.SDKHandler()
				opts.Interceptors = append(opts.Interceptors, m.Interceptor())
			}
			cl, err := dialWith(c, mh)
			if err != nil {
				return err
			}
			defer cl.Close()
			if m != nil {
				watchDORA(c.Context, c, m, cl, log)
			}
			if c.Bool("register-search-attributes") {
				if err := stack.RegisterSearchAttributes(c.Context, cl, worker.ClientConfigFrom(c).Namespace, workflows.SearchAttributes()); err != nil {
					return fmt.Errorf("register search attributes: %w", err)
				}
			}
			w, _ := worker.New(cl, registry(c), log, opts)
			fmt.Fprintf(c.App.ErrWriter, "worker polling task queue %q on %s\n", workflows.TaskQueue, worker.ClientConfigFrom(c).Address)
			stop := make(chan any)
			go func() {
				sig := make(chan os.Signal, 1)
				signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
				select {
				case <-sig:
				case <-c.Context.Done():
				}
				close(stop)
			}()
			return w.Run(stop)
		},
	}
}
