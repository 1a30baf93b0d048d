package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/iampolicy"
)

func iamPolicyCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "iam-policy",
		Usage:     "print the least-privilege IAM policy a deploy or drill spec needs",
		ArgsUsage: "<spec.yaml | shipped name>",
		Description: "Reads a deploy spec (top-level service:) or a drill spec (top-level name:), collects every\n" +
			"provider target it uses and prints one IAM policy document (JSON) granting exactly the\n" +
			"actions those providers call, on the resources named in their settings. Providers that\n" +
			"call no cloud API add nothing. Nothing is contacted.",
		Flags: []ucli.Flag{localFlag},
		Action: func(c *ucli.Context) error {
			path, err := oneArg(c, "deploy or drill spec (a path or a shipped name)")
			if err != nil {
				return err
			}
			reg := registry(c)
			uses, err := SpecUses(path, reg)
			if err != nil {
				return specErr(err)
			}
			out, err := iampolicy.JSON(reg.Provider, uses)
			if err != nil {
				return specErr(fmt.Errorf("%s: %w", path, err))
			}
			_, err = c.App.Writer.Write(out)
			return err
		},
	}
}

// Spec kinds as iam-policy tells them apart.
const (
	kindDeploy = "deploy"
	kindDrill  = "drill"
)

// SpecUses loads the deploy or drill spec at path (or the shipped spec of
// that name), validates it against reg and lists every capability and
// target it uses, without duplicates, in the order the spec names them.
func SpecUses(path string, reg *activities.Registry) ([]iampolicy.Use, error) {
	kind, err := specKind(path)
	if err != nil {
		return nil, err
	}
	if kind == kindDeploy {
		s, err := deploys.Load(path, reg)
		if err != nil {
			return nil, err
		}
		return s.Uses(), nil
	}
	s, err := drills.Load(path, reg)
	if err != nil {
		return nil, err
	}
	return s.Uses(), nil
}

// specKind tells a drill spec (top-level name:) from a deploy spec
// (top-level service:). Shipped names are known by the shelf they are on.
func specKind(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !strings.ContainsAny(path, `/\`) {
		name := strings.TrimSuffix(path, ".yaml")
		switch {
		case slices.Contains(drills.Shipped(), name):
			return kindDrill, nil
		case slices.Contains(deploys.Shipped(), name):
			return kindDeploy, nil
		}
		return "", fmt.Errorf("%s: no such file and no shipped spec of that name (shipped deploys: %s; drills: %s)",
			path, strings.Join(deploys.Shipped(), ", "), strings.Join(drills.Shipped(), ", "))
	}
	if err != nil {
		return "", fmt.Errorf("%s: cannot read spec: %w", path, err)
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return "", fmt.Errorf("%s: not a YAML mapping: %w", path, err)
	}
	_, hasName := top["name"]
	_, hasService := top["service"]
	switch {
	case hasName && hasService:
		return "", fmt.Errorf("%s: has both name: (drill) and service: (deploy) at the top level; a spec is one or the other", path)
	case hasName:
		return kindDrill, nil
	case hasService:
		return kindDeploy, nil
	}
	return "", fmt.Errorf("%s: neither a drill spec (top-level name:) nor a deploy spec (top-level service:)", path)
}
