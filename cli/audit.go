package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/audit"
)

func auditCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "audit",
		Usage: "the tamper-evident audit log of break-glass, approvals, hotfixes and overrides",
		Subcommands: []*ucli.Command{{
			Name:  "verify",
			Usage: "check the log's hash chain: exit 0 whole, 3 a record was modified, deleted or reordered, 2 no log",
			Flags: []ucli.Flag{
				&ucli.StringFlag{Name: "file", EnvVars: []string{audit.EnvFile}, Usage: "the log (default " + audit.DefaultFile + ")"},
				outputFlag,
			},
			Action: func(c *ucli.Context) error {
				asJSON, err := jsonOut(c)
				if err != nil {
					return err
				}
				path := audit.Path(c.String("file"))
				rep, err := audit.Verify(path)
				if err != nil {
					return usageErr("%v", err)
				}
				if asJSON {
					if err := printJSON(c.App.Writer, rep); err != nil {
						return err
					}
				} else {
					for _, p := range rep.Problems {
						fmt.Fprintf(c.App.Writer, "%s:%d: %s\n", path, p.Line, p.Msg)
					}
					if rep.OK() {
						fmt.Fprintf(c.App.Writer, "%s: %d records, chain whole; head %s\n  (a cut tail leaves a whole chain: compare the head or the count with a copy kept elsewhere)\n", path, rep.Records, rep.Head)
					}
				}
				if !rep.OK() {
					return ucli.Exit(fmt.Sprintf("%s: the chain is broken in %d places", path, len(rep.Problems)), ExitOutcome)
				}
				return nil
			},
		}},
	}
}
