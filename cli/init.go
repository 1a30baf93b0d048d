package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/schema"
	"github.com/drillship/drillship/worker"
)

// A starter is a commented spec that validates as written: the comments
// say what each field means and what it allows, so that a first spec is
// edited rather than guessed.
type starter struct {
	name  string // the --provider or --scenario value
	about string // one line, for --help
	body  string // the spec, without the yaml-language-server line
}

func starterNames(ss []starter) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.name)
	}
	return out
}

func starterHelp(ss []starter) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "\n  %-22s %s", s.name, s.about)
	}
	return b.String()
}

func deployInit() *ucli.Command {
	return initCommand(schema.Deploy, "provider", deployStarters, func(name string, data []byte) error {
		_, err := deploys.Parse(name, data, worker.Providers(worker.ProviderOptions{}))
		return err
	})
}

func drillInit() *ucli.Command {
	return initCommand(schema.Drill, "scenario", drillStarters, func(name string, data []byte) error {
		_, err := drills.Parse(name, data, worker.Providers(worker.ProviderOptions{}))
		return err
	})
}

func initCommand(kind, choice string, starters []starter, parse func(string, []byte) error) *ucli.Command {
	return &ucli.Command{
		Name:  "init",
		Usage: "write a commented starter " + kind + " spec that validates as written",
		Description: fmt.Sprintf("--%s chooses the starter:%s\n\n"+
			"The first line points editors with the YAML language server at the JSON Schema: the\n"+
			"repository's docs/schema/%s.json when the spec is written inside a drillship checkout,\n"+
			"else %s.schema.json written next to the spec (--schema PATH|URL chooses, --schema none\n"+
			"leaves the line out).", choice, starterHelp(starters), kind, kind),
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: choice, Value: starters[0].name, Usage: "the starter: " + strings.Join(starterNames(starters), ", ")},
			&ucli.StringFlag{Name: "out", Usage: "write the spec to `FILE` (default: standard output)"},
			&ucli.BoolFlag{Name: "force", Usage: "overwrite --out if it exists"},
			&ucli.StringFlag{Name: "schema", Usage: "the $schema of the yaml-language-server line: a path relative to the spec, an URL, or none"},
		},
		Action: func(c *ucli.Context) error {
			full := kind + " init"
			if c.NArg() > 0 {
				return usageErr("%s: takes no arguments (--%s chooses the starter, --out the file); got %q", full, choice, c.Args().Slice())
			}
			var st *starter
			for i := range starters {
				if starters[i].name == c.String(choice) {
					st = &starters[i]
				}
			}
			if st == nil {
				return usageErr("%s: --%s %q: allowed %s", full, choice, c.String(choice), strings.Join(starterNames(starters), ", "))
			}
			out := c.String("out")
			if out != "" && !c.Bool("force") {
				if _, err := os.Stat(out); err == nil {
					return usageErr("%s: %s exists; nothing was written (--force overwrites it)", full, out)
				}
			}
			dir := "."
			if out != "" {
				dir = filepath.Dir(out)
			}
			ref, writeSchema, err := schemaRef(c.String("schema"), kind, dir)
			if err != nil {
				return err
			}
			var b strings.Builder
			if ref != "" {
				fmt.Fprintf(&b, "# yaml-language-server: $schema=%s\n", ref)
				if writeSchema && out == "" {
					fmt.Fprintf(&b, "# (write the schema next to this spec: drillship schema %s --out %s)\n", kind, ref)
				}
			}
			b.WriteString(st.body)
			data := []byte(b.String())
			// A starter that does not validate is a bug here, never the user's.
			if err := parse(kind+"-"+st.name+".yaml", data); err != nil {
				return fmt.Errorf("%s: the %s starter does not validate (a bug in drillship): %w", full, st.name, err)
			}
			if out == "" {
				_, err := c.App.Writer.Write(data)
				return err
			}
			if writeSchema {
				p := filepath.Join(dir, ref)
				if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
					sb, err := schema.Generate(kind, worker.Providers(worker.ProviderOptions{}))
					if err != nil {
						return err
					}
					if err := os.WriteFile(p, sb, 0o644); err != nil {
						return fmt.Errorf("%s: %w", full, err)
					}
					fmt.Fprintf(c.App.Writer, "wrote %s (the JSON Schema the spec's first line names)\n", p)
				}
			}
			if err := os.WriteFile(out, data, 0o644); err != nil {
				return fmt.Errorf("%s: %w", full, err)
			}
			fmt.Fprintf(c.App.Writer, "wrote %s (%s starter: %s)\n", out, st.name, st.about)
			fmt.Fprintf(c.App.Writer, "  check it:  drillship %s validate %s\n", kind, out)
			return nil
		},
	}
}

// schemaRef is the $schema of the yaml-language-server line for a spec in
// dir: the flag's value, or the checkout's docs/schema file found above dir
// (relative, as the shipped specs name it), else a file beside the spec that
// the caller writes (writeSchema).
func schemaRef(flag, kind, dir string) (ref string, writeSchema bool, err error) {
	switch flag {
	case "none":
		return "", false, nil
	case "":
	default:
		if strings.ContainsAny(flag, " \t\n#") {
			return "", false, usageErr("--schema %q: a path or URL without spaces or '#', or none", flag)
		}
		return flag, false, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, err
	}
	for d := abs; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "docs", "schema", kind+".json")
		if _, err := os.Stat(p); err == nil {
			if rel, err := filepath.Rel(abs, p); err == nil {
				return filepath.ToSlash(rel), false, nil
			}
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return kind + ".schema.json", true, nil
}
