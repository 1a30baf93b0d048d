package cli

import (
	"fmt"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/localenv"
)

// envIncident keeps the local environment's incidents: what a policy with
// `incidents: {provider: local}` asks before it lets anyone break glass.
func envIncident() *ucli.Command {
	return &ucli.Command{
		Name:  "incident",
		Usage: "open, resolve and list incidents (the policy's local incident provider)",
		Subcommands: []*ucli.Command{
			{
				Name: "open", Usage: "open (or reopen) an incident", ArgsUsage: "ID",
				Flags: []ucli.Flag{envLocalFlag(), outputFlag, &ucli.StringFlag{Name: "title", Usage: "what it is about"}},
				Action: func(c *ucli.Context) error {
					return envIncidentPut(c, func(cl *localenv.Client, id string) (localenv.Incident, error) {
						return cl.OpenIncident(c.Context, id, c.String("title"))
					})
				},
			},
			{
				Name: "resolve", Usage: "resolve an open incident", ArgsUsage: "ID",
				Flags: []ucli.Flag{envLocalFlag(), outputFlag},
				Action: func(c *ucli.Context) error {
					return envIncidentPut(c, func(cl *localenv.Client, id string) (localenv.Incident, error) {
						return cl.ResolveIncident(c.Context, id)
					})
				},
			},
			envIncidentList(),
		},
	}
}

func envIncidentPut(c *ucli.Context, put func(*localenv.Client, string) (localenv.Incident, error)) error {
	asJSON, err := jsonOut(c)
	if err != nil {
		return err
	}
	id, err := oneArg(c, "incident id (e.g. INC-42)")
	if err != nil {
		return err
	}
	cl, err := envClient(c)
	if err != nil {
		return err
	}
	in, err := put(cl, id)
	if err != nil {
		return envErr(err)
	}
	if asJSON {
		return printJSON(c.App.Writer, in)
	}
	if in.Status == localenv.IncidentResolved {
		fmt.Fprintf(c.App.Writer, "incident %s resolved at %s\n", in.ID, msTime(in.ResolvedAt))
		return nil
	}
	fmt.Fprintf(c.App.Writer, "incident %s open since %s\n", in.ID, msTime(in.OpenedAt))
	return nil
}

func envIncidentList() *ucli.Command {
	return &ucli.Command{
		Name: "list", Usage: "every incident, open and resolved",
		Flags: []ucli.Flag{envLocalFlag(), outputFlag},
		Action: func(c *ucli.Context) error {
			cl, asJSON, err := envListing(c, "env incident list")
			if err != nil {
				return err
			}
			is, err := cl.Incidents(c.Context)
			if err != nil {
				return envErr(err)
			}
			if asJSON {
				return printJSON(c.App.Writer, is)
			}
			if len(is) == 0 {
				fmt.Fprintln(c.App.Writer, "no incidents")
				return nil
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tOPENED\tRESOLVED\tTITLE")
			for _, in := range is {
				resolved := "-"
				if in.ResolvedAt != 0 {
					resolved = msTime(in.ResolvedAt)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.ID, in.Status, msTime(in.OpenedAt), resolved, in.Title)
			}
			return tw.Flush()
		},
	}
}
