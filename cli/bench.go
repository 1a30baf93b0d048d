package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/bench"
)

func benchCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "bench",
		Usage: "measure drillship on the embedded stack; writes DIR/bench.md and DIR/bench.json",
		Description: "Overhead against a floor workflow, rollback latency, drill detection accuracy, a fleet of\n" +
			"concurrent deploys on one worker process, history size, start-up time and binary size.\n" +
			"--quick is a smoke run (under two minutes); the full run takes about 20 minutes.\n" +
			"The binary size is measured with `go build` when run from the source tree.\n" +
			"--kubernetes adds a section comparing drillship with Argo Rollouts on the lab's cluster (about 5 minutes,\n" +
			"plus an 11-minute build of the Argo controller on first use; needs `drillship lab build`).",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "quick", Usage: "few runs of each, fleet of 100: checks the report, not the figures"},
			&ucli.StringFlag{Name: "out", Value: "bench-report", Usage: "directory for bench.md and bench.json"},
			&ucli.StringFlag{Name: "source", Value: ".", Usage: "module root to `go build` for the binary size"},
			&ucli.StringSliceFlag{Name: "only", Usage: "run only these sections (" + strings.Join(bench.Sections, ", ") + "); the rest are reported as skipped"},
			&ucli.IntFlag{Name: "kills", Usage: "worker kills in the kill section (default 10, 1 with --quick)"},
			&ucli.BoolFlag{Name: "kubernetes", Usage: "add the kubernetes section: the same canary under drillship and Argo Rollouts on the lab's cluster (needs `drillship lab build`; builds Argo Rollouts on first use)"},
		},
		Action: func(c *ucli.Context) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("bench: find the drillship binary for the fleet's processes: %w", err)
			}
			rep, err := bench.Run(c.Context, bench.Options{
				Quick: c.Bool("quick"), Exe: exe, SourceDir: c.String("source"), Progress: c.App.ErrWriter,
				Only: c.StringSlice("only"), Kills: c.Int("kills"), Kubernetes: c.Bool("kubernetes"),
			})
			if err != nil {
				return err
			}
			out := c.String("out")
			if err := rep.Write(out); err != nil {
				return err
			}
			failed := 0
			for _, s := range rep.Sections {
				if s.Status == bench.StatusError {
					failed++
				}
			}
			fmt.Fprintf(c.App.Writer, "wrote %s and %s\n", filepath.Join(out, "bench.md"), filepath.Join(out, "bench.json"))
			if failed > 0 {
				return ucli.Exit(fmt.Sprintf("%d section(s) could not be measured; see %s", failed, filepath.Join(out, "bench.md")), 1)
			}
			return nil
		},
		Subcommands: []*ucli.Command{
			{
				Name: "serve", Hidden: true, Usage: "the fleet's Temporal server process (prints its address; stops at EOF on stdin)",
				Action: func(c *ucli.Context) error {
					return bench.Serve(c.Context, os.Stdin, c.App.Writer)
				},
			},
			{
				Name: "worker", Hidden: true, Usage: "the fleet's worker process, with the bench no-op provider (stops at EOF on stdin)",
				Flags: []ucli.Flag{&ucli.StringFlag{Name: "address", Required: true, Usage: "Temporal frontend host:port"}},
				Action: func(c *ucli.Context) error {
					return bench.Work(c.Context, c.String("address"), os.Stdin, c.App.Writer)
				},
			},
		},
	}
}
