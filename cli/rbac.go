package cli

import (
	"fmt"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/rbac"
)

func rbacCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "rbac",
		Usage:     "print the least-privilege Kubernetes Role/ClusterRole a deploy or drill spec needs",
		ArgsUsage: "<spec.yaml | shipped name>...",
		Description: "Reads deploy and drill specs, collects every provider target they use and prints the\n" +
			"Role (per namespace) and ClusterRole (cluster-scoped resources such as nodes) granting exactly\n" +
			"the verbs those providers use, with bindings to --service-account. Apply it with\n" +
			"`drillship rbac SPEC... | kubectl apply -f -`. Give every spec the worker runs in one call:\n" +
			"a second call would print a role of the same name that replaces the first.\n" +
			"Providers that talk to no cluster add nothing.\n" +
			"Nothing is contacted.",
		Flags: []ucli.Flag{localFlag,
			&ucli.StringFlag{Name: "name", Value: "drillship-worker", Usage: "name of the Role, ClusterRole and bindings"},
			&ucli.StringFlag{Name: "namespace", Value: "default", Usage: "namespace for targets whose settings name none (their kubeconfig context's)"},
			&ucli.StringFlag{Name: "service-account", Value: "drillship/drillship-worker", Usage: "namespace/name of the worker's ServiceAccount the bindings grant to; empty: no bindings"},
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() == 0 {
				return usageErr("%s: expected one or more deploy or drill specs (paths or shipped names)", c.Command.FullName())
			}
			reg := registry(c)
			var uses []activities.Use
			for _, path := range c.Args().Slice() {
				u, err := SpecUses(path, reg)
				if err != nil {
					return specErr(err)
				}
				uses = append(uses, u...)
			}
			path := strings.Join(c.Args().Slice(), ", ")
			o := rbac.Options{Name: c.String("name"), Namespace: c.String("namespace"), ServiceAccount: c.String("service-account")}
			g, err := rbac.Build(reg.Provider, uses, o)
			if err != nil {
				return specErr(fmt.Errorf("%s: %w", path, err))
			}
			out, err := rbac.YAML(g, o)
			if err != nil {
				return usageErr("--service-account: %v", err)
			}
			if len(out) == 0 {
				fmt.Fprintf(c.App.ErrWriter, "%s uses no Kubernetes provider: no role needed\n", path)
				return nil
			}
			_, err = c.App.Writer.Write(out)
			return err
		},
	}
}
