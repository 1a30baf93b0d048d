// Package cli is drillship's command line (urfave/cli/v2). It is thin: it
// parses flags, loads and validates specs, talks to Temporal, and prints.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"

	ucli "github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/schedule"
	"github.com/drillship/drillship/worker"
)

// Exit codes.
const (
	ExitUsage   = 2 // bad flags or spec: nothing was started
	ExitOutcome = 3 // the deploy or drill ended, but not as hoped
)

// App returns the drillship application.
func App() *ucli.App {
	drills.CalendarCheck = schedule.Validate
	return &ucli.App{
		Name:                 "drillship",
		Usage:                "deploys that watch before they promote, and failover drills that are real — on Temporal",
		EnableBashCompletion: true,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn or error", EnvVars: []string{"DRILLSHIP_LOG_LEVEL"}},
		},
		Commands: []*ucli.Command{
			devCommand(), demoCommand(), workerCommand(), deployCommand(), drillCommand(),
			labCommand(),
			codecServerCommand(),
			benchCommand(),
			iamPolicyCommand(), rbacCommand(),
			schemaCommand(),
			envCommand(),
			policyCommand(), auditCommand(),
		},
		CommandNotFound: func(c *ucli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "drillship: %q is not a command; see `drillship --help`\n", name)
			os.Exit(ExitUsage)
		},
		ExitErrHandler: func(c *ucli.Context, err error) {
			if err == nil {
				return
			}
			var ec ucli.ExitCoder
			if errors.As(err, &ec) {
				if msg := err.Error(); msg != "" {
					fmt.Fprintln(c.App.ErrWriter, "drillship:", msg)
				}
				os.Exit(ec.ExitCode())
			}
			fmt.Fprintln(c.App.ErrWriter, "drillship:", err)
			os.Exit(1)
		},
	}
}

// Run runs the application with args and returns the exit code; tests call
// it in-process.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := App()
	app.Writer, app.ErrWriter = stdout, stderr
	code := 0
	// Sub-commands' apps inherit this hook.
	app.CommandNotFound = func(c *ucli.Context, name string) {
		where := "drillship"
		if c.Command != nil && c.Command.Name != "" && c.Command.Name != app.Name {
			where = "drillship " + c.Command.FullName()
		}
		fmt.Fprintf(stderr, "drillship: %q is not a command; see `%s --help`\n", name, where)
		code = ExitUsage
	}
	app.ExitErrHandler = func(c *ucli.Context, err error) {
		if err == nil {
			return
		}
		code = 1
		var ec ucli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, "drillship:", msg)
		}
	}
	if err := app.RunContext(ctx, interspersed(app, args)); err != nil && code == 0 {
		// urfave reports flag errors without calling the handler.
		fmt.Fprintln(stderr, "drillship:", err)
		code = ExitUsage
	}
	return code
}

func logLevel(c *ucli.Context) slog.Level {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		lvl = slog.LevelWarn
	}
	return lvl
}

func logger(c *ucli.Context) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: logLevel(c)}))
}

// quietLogger is for commands that print their own progress (demo): the
// SDK's and the server's logs show only when asked for with --log-level.
func quietLogger(c *ucli.Context) *slog.Logger {
	if c.IsSet("log-level") && logLevel(c) <= slog.LevelInfo {
		return logger(c)
	}
	return slog.New(slog.DiscardHandler)
}

// serverLogger gets the embedded Temporal server's logs: errors only,
// unless --log-level asks for more.
func serverLogger(c *ucli.Context) *slog.Logger {
	lvl := max(logLevel(c), slog.LevelError)
	if c.IsSet("log-level") {
		lvl = logLevel(c)
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: lvl}))
}

// usageErr is a bad flag or spec: exit 2, nothing started.
func usageErr(format string, args ...any) error {
	return ucli.Exit(fmt.Sprintf(format, args...), ExitUsage)
}

func specErr(err error) error { return ucli.Exit(err.Error(), ExitUsage) }

// registry is what validates specs: the same providers the worker runs.
func registry(c *ucli.Context) *activities.Registry {
	return worker.Providers(worker.ProviderOptions{LocalEnvURL: c.String("local-env")})
}

func dial(c *ucli.Context) (client.Client, error) { return dialWith(c, nil) }

// dialWith dials with the SDK's metrics going to mh (nil: none).
func dialWith(c *ucli.Context, mh client.MetricsHandler) (client.Client, error) {
	cfg := worker.ClientConfigFrom(c)
	cfg.MetricsHandler = mh
	if err := cfg.Err(); err != nil {
		return nil, usageErr("%v", err) // a bad config file or profile: nothing was tried
	}
	cl, err := worker.Dial(c.Context, cfg, logger(c))
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w (start one with `drillship dev`, or set --address / TEMPORAL_ADDRESS)", cfg.Address, err)
	}
	return cl, nil
}

func whoami() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if v := os.Getenv("USER"); v != "" {
		return v
	}
	return "unknown"
}

var (
	outputFlag = &ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text or json"}
	whoFlag    = &ucli.StringFlag{Name: "who", Value: whoami(), Usage: "who is acting, for the audit record"}
	localFlag  = &ucli.StringFlag{Name: "local-env", EnvVars: []string{"DRILLSHIP_LOCAL_ENV"}, Usage: "control URL of the local environment (printed by `drillship dev`)"}
)

func jsonOut(c *ucli.Context) (bool, error) {
	switch c.String("output") {
	case "json":
		return true, nil
	case "text", "":
		return false, nil
	}
	return false, usageErr("--output: %q is not allowed (allowed: text, json)", c.String("output"))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func withClientFlags(fs ...ucli.Flag) []ucli.Flag {
	return append(worker.ClientFlags(), fs...)
}
