package cli

import (
	"fmt"
	"io"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/activities/local"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
)

var onlineFlag = &ucli.BoolFlag{Name: "online", Usage: "also read the world through every provider (not only local): weights, release state, a sample per check; nothing is changed"}

// online says which providers the online checks read: local when the
// environment's URL is known, every provider with --online. Without
// either, only the offline checks run.
func online(c *ucli.Context) deploys.Online {
	url := c.String("local-env")
	all := c.Bool("online")
	if url == "" && !all {
		return deploys.Online{}
	}
	return deploys.Online{
		World:     registry(c),
		Reachable: func(p string) bool { return all || (p == local.Name && url != "") },
	}
}

func onlineWhere(c *ucli.Context) string {
	var parts []string
	if u := c.String("local-env"); u != "" {
		parts = append(parts, "the local environment at "+u)
	}
	if c.Bool("online") {
		parts = append(parts, "every provider (--online)")
	}
	return strings.Join(parts, " and ")
}

// printChecks says which checks ran, so that "ok" is never read as more
// than was checked.
func printChecks(c *ucli.Context, w io.Writer, r deploys.Report, o deploys.Online) {
	fmt.Fprintln(w, "  offline: fields, types and bounds; providers' declarations (settings, metrics, faults, actions, weight keys); no secrets")
	if o.World == nil {
		fmt.Fprintln(w, "  online: not run (pass --local-env URL, or --online, to check against the world)")
		return
	}
	fmt.Fprintf(w, "  online, reading %s (nothing changed):\n", onlineWhere(c))
	for _, s := range r.Ran {
		fmt.Fprintf(w, "    ran: %s\n", s)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "    not checked: %s\n", s)
	}
}

func deployValidate() *ucli.Command {
	return &ucli.Command{
		Name: "validate", Usage: "check deploy specs without starting anything (offline; online with --local-env or --online)",
		ArgsUsage: "<spec.yaml | shipped name>...",
		Flags: []ucli.Flag{localFlag, onlineFlag,
			&ucli.StringFlag{Name: "version", Usage: "the version you mean to deploy (online: it must not be the stable one)"}},
		Action: func(c *ucli.Context) error {
			if c.NArg() == 0 {
				return usageErr("deploy validate: name at least one spec file")
			}
			o := online(c)
			var bad []string
			for _, p := range c.Args().Slice() {
				_, r, err := deploys.LoadChecked(c.Context, p, registry(c), o, c.String("version"))
				if err != nil {
					bad = append(bad, err.Error())
					continue
				}
				fmt.Fprintf(c.App.Writer, "%s: ok\n", p)
				printChecks(c, c.App.Writer, r, o)
			}
			if len(bad) > 0 {
				return ucli.Exit(strings.Join(bad, "\n"), ExitUsage)
			}
			return nil
		},
	}
}

func drillValidate() *ucli.Command {
	return &ucli.Command{
		Name: "validate", Usage: "check drill specs without running anything (offline; online with --local-env or --online)",
		ArgsUsage: "<spec.yaml | shipped name>...",
		Flags:     []ucli.Flag{localFlag, onlineFlag},
		Action: func(c *ucli.Context) error {
			if c.NArg() == 0 {
				return usageErr("drill validate: name at least one spec file")
			}
			o := online(c)
			var bad []string
			for _, p := range c.Args().Slice() {
				_, r, err := drills.LoadChecked(c.Context, p, registry(c), o)
				if err != nil {
					bad = append(bad, err.Error())
					continue
				}
				fmt.Fprintf(c.App.Writer, "%s: ok\n", p)
				printChecks(c, c.App.Writer, r, o)
			}
			if len(bad) > 0 {
				return ucli.Exit(strings.Join(bad, "\n"), ExitUsage)
			}
			return nil
		},
	}
}

// versionFlagValue reads --version of deploy start: missing and valueless
// are said as such (a bare --version reads the next argument or "--").
func versionFlagValue(c *ucli.Context) (string, error) {
	v := c.String("version")
	switch {
	case !c.IsSet("version"):
		return "", usageErr("deploy start: --version is required: the version to deploy (such as --version v2)")
	case v == "" || strings.HasPrefix(v, "-"):
		return "", usageErr("--version: needs a value, the version to deploy (such as --version v2); got %q", v)
	}
	if err := deploys.ValidateVersion(v); err != nil {
		return "", usageErr("%v", err)
	}
	return v, nil
}
