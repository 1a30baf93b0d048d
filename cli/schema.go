package cli

import (
	"fmt"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/schema"
	"github.com/drillship/drillship/worker"
)

func schemaCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "schema",
		Usage:     "print the JSON Schema of deploy or drill specs, for editors",
		ArgsUsage: "deploy|drill",
		Description: "Prints the JSON Schema (draft 2020-12) of a spec kind, generated from the spec types and\n" +
			"every provider's declarations (settings, metric names, fault kinds, actions). The same\n" +
			"files are in the repository under docs/schema/. With the YAML language server (VS Code's\n" +
			"YAML extension, and others), a spec whose first line is\n" +
			"  # yaml-language-server: $schema=drill.schema.json\n" +
			"(a path relative to the spec, or an URL) is completed and checked as you type.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "out", Usage: "write the schema to `FILE` instead of standard output"},
		},
		Action: func(c *ucli.Context) error {
			kind, err := oneArg(c, "spec kind ("+strings.Join(schema.Kinds, " or ")+")")
			if err != nil {
				return err
			}
			if kind != schema.Deploy && kind != schema.Drill {
				return usageErr("schema: %q is not a spec kind (allowed: %s)", kind, strings.Join(schema.Kinds, ", "))
			}
			// Declarations do not depend on where the local environment runs.
			b, err := schema.Generate(kind, worker.Providers(worker.ProviderOptions{}))
			if err != nil {
				return err
			}
			if out := c.String("out"); out != "" {
				if err := os.WriteFile(out, b, 0o644); err != nil {
					return fmt.Errorf("schema: %w", err)
				}
				return nil
			}
			_, err = c.App.Writer.Write(b)
			return err
		},
	}
}
