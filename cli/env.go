package cli

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/local"
	"github.com/drillship/drillship/localenv"
)

// envCommand acts on the local environment through its control API, the
// same API the local provider drives: what a person does here is what a
// deploy or drill would see.
func envCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "env",
		Usage: "look at and act on the local environment (weights, versions, faults, load, incidents)",
		Description: "The local environment is the one `drillship dev` starts; name its control URL with\n" +
			"--local-env or DRILLSHIP_LOCAL_ENV (dev prints it). Bad input exits 2 and changes nothing.",
		Subcommands: []*ucli.Command{
			envStatus(),
			{
				Name:  "fault",
				Usage: "put faults in, list them, stop them",
				Subcommands: []*ucli.Command{
					envFaultAdd(), envFaultList(), envFaultStop(),
				},
			},
			envLoad(),
			envWeights(),
			envIncident(),
		},
	}
}

// envLocalFlag is --local-env as `drillship worker` spells it, made anew
// for each App: urfave/cli v2 writes a flag's environment value into the
// flag itself, so a shared flag would carry DRILLSHIP_LOCAL_ENV from one
// in-process run (tests) into the next.
func envLocalFlag() *ucli.StringFlag {
	return &ucli.StringFlag{Name: localFlag.Name, EnvVars: localFlag.EnvVars, Usage: localFlag.Usage}
}

// envClient is the client of the environment that --local-env names.
func envClient(c *ucli.Context) (*localenv.Client, error) {
	u := c.String("local-env")
	if u == "" {
		return nil, usageErr("%s: which local environment? pass --local-env URL or set DRILLSHIP_LOCAL_ENV (`drillship dev` prints both)", c.Command.FullName())
	}
	cl, err := localenv.NewClient(u)
	if err != nil {
		return nil, usageErr("--local-env: %v", err)
	}
	return cl, nil
}

// envListing is the start of a command that reads and prints: the output
// format, no arguments, and the environment's client.
func envListing(c *ucli.Context, name string) (*localenv.Client, bool, error) {
	asJSON, err := jsonOut(c)
	if err != nil {
		return nil, false, err
	}
	if c.NArg() > 0 {
		return nil, false, usageErr("%s: takes no arguments; got %q", name, c.Args().Slice())
	}
	cl, err := envClient(c)
	return cl, asJSON, err
}

// envErr says a refusal by the environment (bad input: nothing changed) with
// exit 2; anything else (unreachable, a 5xx) is exit 1.
func envErr(err error) error {
	if localenv.Refused(err) {
		return ucli.Exit("the local environment refused: "+err.Error()+" (nothing was changed)", ExitUsage)
	}
	return err
}

func envStatus() *ucli.Command {
	return &ucli.Command{
		Name: "status", Usage: "weights, versions (stable, running), faults in effect, load",
		Flags: []ucli.Flag{envLocalFlag(), outputFlag},
		Action: func(c *ucli.Context) error {
			cl, asJSON, err := envListing(c, "env status")
			if err != nil {
				return err
			}
			s, err := cl.State(c.Context)
			if err != nil {
				return envErr(err)
			}
			if asJSON {
				return printJSON(c.App.Writer, s)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "local environment %s, service %s\n", cl.URL(), s.Service)
			fmt.Fprintf(w, "versions   stable %s; running %s\n", s.Stable, strings.Join(s.Running, ", "))
			fmt.Fprintf(w, "weights    regions:  %s\n", weightsText(s.RegionWeights, s.Regions))
			fmt.Fprintf(w, "           versions: %s\n", weightsText(s.VersionWeights, nil))
			fmt.Fprintf(w, "load       x%s (%s requests/s)\n", formatNum(s.Load.Multiplier), formatNum(float64(s.Load.RPS)*s.Load.Multiplier))
			if len(s.Shed) > 0 {
				fmt.Fprintf(w, "shed       %s (served without)\n", strings.Join(s.Shed, ", "))
			}
			for _, in := range s.Instances {
				if !in.Healthy {
					fmt.Fprintf(w, "unhealthy  %s/%s at %s\n", in.Region, in.Version, in.URL)
				}
			}
			if len(s.Faults) == 0 {
				fmt.Fprintln(w, "faults     none in effect")
				return nil
			}
			fmt.Fprintln(w, "faults in effect:")
			printFaults(w, s.Faults, false)
			return nil
		},
	}
}

// weightsText prints weights in order (regions as the environment lists
// them, else by name).
func weightsText(w map[string]int, order []string) string {
	if len(order) == 0 {
		order = slices.Sorted(maps.Keys(w))
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s %d", k, w[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func printFaults(w io.Writer, fs []localenv.FaultRecord, withEnd bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "  ID\tKIND\tPARAMS\tOWNER\tSTARTED"
	if withEnd {
		head += "\tENDED"
	}
	fmt.Fprintln(tw, head)
	for _, f := range fs {
		line := fmt.Sprintf("  %s\t%s\t%s\t%s\t%s", f.ID, f.Kind, paramsText(f.Params), ownerText(f.Owner), msTime(f.StartedAt))
		if withEnd {
			end := "in effect"
			if f.EndedAt != 0 {
				end = msTime(f.EndedAt)
			}
			line += "\t" + end
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

func paramsText(p map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, k+"="+p[k])
	}
	return strings.Join(parts, " ")
}

func ownerText(o string) string {
	if o == "" {
		return "(none)"
	}
	return o
}

func msTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000Z")
}

// cliOwner is whose a person's faults are: their own, so that a drill's
// restore (which ends only its own faults) leaves them in, and `env fault
// stop` ends only theirs unless forced.
func cliOwner() string { return "cli:" + whoami() }

// faultFlag maps a flag of `env fault add` to the fault parameter it sets.
type faultFlag struct {
	flag, param string
}

var faultFlags = []faultFlag{
	{"version", "version"}, {"region", "region"}, {"rate", "rate"}, {"latency", "ms"}, {"dependency", "dependency"},
}

func flagOf(param string) string {
	for _, f := range faultFlags {
		if f.param == param {
			return f.flag
		}
	}
	return param
}

// localFaults are the fault kinds the local environment takes, as the
// local provider declares them (the same list specs are checked against).
func localFaults() []activities.FaultDecl { return local.Declare(activities.CapFaults).Faults }

// kindsText lists the kinds with the flags each takes, for usage errors.
func kindsText() string {
	var b strings.Builder
	for _, k := range localFaults() {
		fmt.Fprintf(&b, "\n  %-16s", k.Kind)
		for _, p := range k.Params {
			if p.Required {
				fmt.Fprintf(&b, " --%s", flagOf(p.Name))
			} else {
				fmt.Fprintf(&b, " [--%s]", flagOf(p.Name))
			}
		}
		fmt.Fprintf(&b, "  %s", k.Doc)
	}
	return b.String()
}

// faultParams turns the flags given into the parameters of kind, refusing a
// flag the kind does not take, a missing required one and a value out of
// range, in the flags' own terms.
func faultParams(c *ucli.Context, kind string) (map[string]string, error) {
	i := slices.IndexFunc(localFaults(), func(d activities.FaultDecl) bool { return d.Kind == kind })
	if i < 0 {
		return nil, usageErr("env fault add: %q is not a fault kind of the local environment; kinds:%s", kind, kindsText())
	}
	decl := localFaults()[i]
	field := func(param string) *activities.Field {
		for j := range decl.Params {
			if decl.Params[j].Name == param {
				return &decl.Params[j]
			}
		}
		return nil
	}
	params := map[string]string{}
	for _, ff := range faultFlags {
		if !c.IsSet(ff.flag) {
			continue
		}
		f := field(ff.param)
		if f == nil {
			return nil, usageErr("env fault add %s: --%s is not a parameter of %s; %s takes:%s", kind, ff.flag, kind, kind, takesText(decl))
		}
		v := strings.TrimSpace(c.String(ff.flag))
		if v == "" {
			return nil, usageErr("env fault add %s: --%s needs a value (%s)", kind, ff.flag, f.Doc)
		}
		switch ff.param {
		case "ms":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Millisecond || d > time.Minute || d%time.Millisecond != 0 {
				return nil, usageErr("env fault add %s: --latency %q: allowed a duration 1ms..1m in whole milliseconds (such as 300ms)", kind, v)
			}
			v = strconv.FormatInt(d.Milliseconds(), 10)
		case "rate":
			r, err := strconv.ParseFloat(v, 64)
			lo, hi := 0.0, 1.0
			if f.Min != nil {
				lo = *f.Min
			}
			if f.Max != nil {
				hi = *f.Max
			}
			if err != nil || math.IsNaN(r) || r < lo || r > hi {
				return nil, usageErr("env fault add %s: --rate %q: allowed a number %s..%s (a share of requests: 0.2 is 20%%)", kind, v, formatNum(lo), formatNum(hi))
			}
		default:
			if len(f.Enum) > 0 && !slices.Contains(f.Enum, v) {
				return nil, usageErr("env fault add %s: --%s %q: allowed %s", kind, ff.flag, v, strings.Join(f.Enum, ", "))
			}
		}
		params[ff.param] = v
	}
	for _, p := range decl.Params {
		if _, ok := params[p.Name]; p.Required && !ok {
			return nil, usageErr("env fault add %s: --%s is required (%s); %s takes:%s", kind, flagOf(p.Name), p.Doc, kind, takesText(decl))
		}
	}
	return params, nil
}

func takesText(d activities.FaultDecl) string {
	var b strings.Builder
	for _, p := range d.Params {
		opt := ""
		if !p.Required {
			opt = " (optional"
			if p.Default != "" {
				opt += ", default " + p.Default
			}
			opt += ")"
		}
		fmt.Fprintf(&b, "\n  --%s%s: %s", flagOf(p.Name), opt, p.Doc)
	}
	return b.String()
}

func envFaultAdd() *ucli.Command {
	return &ucli.Command{
		Name: "add", Usage: "put a fault in effect", ArgsUsage: "KIND",
		Description: "Kinds and the flags each takes:" + kindsText() + "\n\n" +
			"The fault is yours (owner cli:<user>, or --owner): a drill's restore leaves it in, and\n" +
			"`env fault stop ID` ends it. The same kind and flags again returns the fault in effect.",
		Flags: []ucli.Flag{envLocalFlag(), outputFlag,
			&ucli.StringFlag{Name: "version", Usage: "the version affected (bad_version: required; error_rate, latency: only it)"},
			&ucli.StringFlag{Name: "region", Usage: "the region affected (region_down: required; error_rate, latency: only it)"},
			&ucli.StringFlag{Name: "rate", Usage: "share of requests that fail, such as 0.2 (error_rate: required; bad_version: default 0.1)"},
			&ucli.StringFlag{Name: "latency", Usage: "added latency, such as 300ms (latency: required)"},
			&ucli.StringFlag{Name: "dependency", Usage: "the dependency that fails (dependency_down: recs)"},
			&ucli.StringFlag{Name: "owner", Value: cliOwner(), Usage: "whose fault it is"},
		},
		Action: func(c *ucli.Context) error {
			asJSON, err := jsonOut(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usageErr("env fault add: expected one argument, the fault kind; got %d; kinds:%s", c.NArg(), kindsText())
			}
			kind := c.Args().First()
			params, err := faultParams(c, kind)
			if err != nil {
				return err
			}
			owner := strings.TrimSpace(c.String("owner"))
			if owner == "" {
				return usageErr("env fault add: --owner needs a value (default %s)", cliOwner())
			}
			cl, err := envClient(c)
			if err != nil {
				return err
			}
			// Read what is in effect first: the environment answers a repeat
			// with the fault already in, which must not be told as new.
			before, err := cl.Faults(c.Context)
			if err != nil {
				return envErr(err)
			}
			f, err := cl.Inject(c.Context, localenv.FaultRequest{Kind: kind, Params: params, Owner: owner})
			if err != nil {
				return envErr(err)
			}
			if asJSON {
				return printJSON(c.App.Writer, f)
			}
			already := slices.ContainsFunc(before, func(b localenv.FaultRecord) bool { return b.ID == f.ID && b.Active })
			w := c.App.Writer
			if already {
				fmt.Fprintf(w, "fault %s was already in effect (%s %s, owner %s, since %s): nothing changed\n",
					f.ID, f.Kind, paramsText(f.Params), ownerText(f.Owner), msTime(f.StartedAt))
			} else {
				fmt.Fprintf(w, "fault %s in effect: %s %s (owner %s, since %s)\n", f.ID, f.Kind, paramsText(f.Params), ownerText(f.Owner), msTime(f.StartedAt))
			}
			fmt.Fprintf(w, "  stop it: drillship env fault stop %s\n", f.ID)
			return nil
		},
	}
}

func envFaultList() *ucli.Command {
	return &ucli.Command{
		Name: "list", Usage: "the faults in effect (--all: ended ones too)",
		Flags: []ucli.Flag{envLocalFlag(), outputFlag,
			&ucli.BoolFlag{Name: "all", Usage: "every fault ever put in, with when it ended"},
		},
		Action: func(c *ucli.Context) error {
			cl, asJSON, err := envListing(c, "env fault list")
			if err != nil {
				return err
			}
			fs, err := cl.Faults(c.Context)
			if err != nil {
				return envErr(err)
			}
			if !c.Bool("all") {
				fs = slices.DeleteFunc(fs, func(f localenv.FaultRecord) bool { return !f.Active })
			}
			if asJSON {
				return printJSON(c.App.Writer, fs)
			}
			if len(fs) == 0 {
				fmt.Fprintln(c.App.Writer, "no faults in effect")
				return nil
			}
			printFaults(c.App.Writer, fs, c.Bool("all"))
			return nil
		},
	}
}

func envFaultStop() *ucli.Command {
	return &ucli.Command{
		Name: "stop", Usage: "end one of your faults (--force: anyone's)", ArgsUsage: "ID",
		Flags: []ucli.Flag{envLocalFlag(), outputFlag,
			&ucli.StringFlag{Name: "owner", Value: cliOwner(), Usage: "whose faults you may end"},
			&ucli.BoolFlag{Name: "force", Usage: "end the fault whoever owns it (a drill's own fault: the drill will find it ended)"},
		},
		Action: func(c *ucli.Context) error {
			asJSON, err := jsonOut(c)
			if err != nil {
				return err
			}
			id, err := oneArg(c, "fault id (see `drillship env fault list`)")
			if err != nil {
				return err
			}
			cl, err := envClient(c)
			if err != nil {
				return err
			}
			fs, err := cl.Faults(c.Context)
			if err != nil {
				return envErr(err)
			}
			i := slices.IndexFunc(fs, func(f localenv.FaultRecord) bool { return f.ID == id })
			if i < 0 {
				return usageErr("env fault stop: no fault %q in this environment (`drillship env fault list --all` lists them)", id)
			}
			f := fs[i]
			w := c.App.Writer
			if !f.Active {
				if asJSON {
					return printJSON(w, f)
				}
				fmt.Fprintf(w, "fault %s had already ended at %s: nothing changed\n", f.ID, msTime(f.EndedAt))
				return nil
			}
			owner := c.String("owner")
			if f.Owner != owner && !c.Bool("force") {
				return usageErr("env fault stop: fault %s (%s %s) belongs to %s, not %s; nothing changed (--force ends it anyway)",
					f.ID, f.Kind, paramsText(f.Params), ownerText(f.Owner), owner)
			}
			var ended localenv.FaultRecord
			if f.Owner == owner {
				a, err := cl.StopOwned(c.Context, localenv.FaultRequest{Kind: f.Kind, Params: f.Params, Owner: owner, ID: f.ID})
				if err != nil {
					return envErr(err)
				}
				j := slices.IndexFunc(a.Stopped, func(r localenv.FaultRecord) bool { return r.ID == id })
				if j < 0 {
					return fmt.Errorf("env fault stop: the environment did not end %s (not ours: %q)", id, a.NotOurs)
				}
				ended = a.Stopped[j]
			} else if ended, err = cl.EndFault(c.Context, id); err != nil {
				return envErr(err)
			}
			if asJSON {
				return printJSON(w, ended)
			}
			fmt.Fprintf(w, "fault %s ended at %s (%s %s, owner %s)\n", ended.ID, msTime(ended.EndedAt), ended.Kind, paramsText(ended.Params), ownerText(ended.Owner))
			return nil
		},
	}
}

func envLoad() *ucli.Command {
	return &ucli.Command{
		Name: "load", Usage: "scale the load generator: 2 is twice the normal rate, 0 stops it", ArgsUsage: "MULTIPLIER",
		Flags: []ucli.Flag{envLocalFlag(), outputFlag},
		Action: func(c *ucli.Context) error {
			asJSON, err := jsonOut(c)
			if err != nil {
				return err
			}
			arg, err := oneArg(c, "load multiplier (0..100; 1 is normal)")
			if err != nil {
				return err
			}
			m, err := strconv.ParseFloat(strings.TrimPrefix(arg, "x"), 64)
			if err != nil || math.IsNaN(m) || m < 0 || m > 100 {
				return usageErr("env load: %q: allowed a number 0..100 (1 is normal load, 2 twice it, 0 none)", arg)
			}
			cl, err := envClient(c)
			if err != nil {
				return err
			}
			s, err := cl.State(c.Context)
			if err != nil {
				return envErr(err)
			}
			l, err := cl.SetLoad(c.Context, m)
			if err != nil {
				return envErr(err)
			}
			if asJSON {
				return printJSON(c.App.Writer, l)
			}
			if s.Load.Multiplier == l.Multiplier {
				fmt.Fprintf(c.App.Writer, "load was already x%s (%s requests/s): nothing changed\n", formatNum(l.Multiplier), formatNum(float64(l.RPS)*l.Multiplier))
				return nil
			}
			fmt.Fprintf(c.App.Writer, "load x%s -> x%s (%s requests/s)\n", formatNum(s.Load.Multiplier), formatNum(l.Multiplier), formatNum(float64(l.RPS)*l.Multiplier))
			return nil
		},
	}
}

func envWeights() *ucli.Command {
	return &ucli.Command{
		Name: "weights", Usage: "show or set traffic weights by region or by version", ArgsUsage: "[SERVICE] [NAME=WEIGHT ...]",
		Description: "Without NAME=WEIGHT, prints the weights. Names are all regions (east=0 west=100) or all\n" +
			"versions (v1=90 v2=10); the weights given must add up to 100, and the names of that kind\n" +
			"left out are set to 0. SERVICE, when given, must be the environment's service.",
		Flags: []ucli.Flag{envLocalFlag(), outputFlag},
		Action: func(c *ucli.Context) error {
			asJSON, err := jsonOut(c)
			if err != nil {
				return err
			}
			args := c.Args().Slice()
			service := ""
			if len(args) > 0 && !strings.Contains(args[0], "=") {
				service, args = args[0], args[1:]
			}
			given := map[string]int{}
			for _, a := range args {
				k, v, ok := strings.Cut(a, "=")
				n, err := strconv.Atoi(v)
				if !ok || k == "" || err != nil || n < 0 || n > 100 {
					return usageErr("env weights: %q: write NAME=WEIGHT with a whole number 0..100 (such as west=100)", a)
				}
				if _, dup := given[k]; dup {
					return usageErr("env weights: %s is given twice", k)
				}
				given[k] = n
			}
			cl, err := envClient(c)
			if err != nil {
				return err
			}
			s, err := cl.State(c.Context)
			if err != nil {
				return envErr(err)
			}
			if service != "" && service != s.Service {
				return usageErr("env weights: service %q: this local environment runs %q", service, s.Service)
			}
			if len(given) == 0 {
				if asJSON {
					return printJSON(c.App.Writer, map[string]map[string]int{"regions": s.RegionWeights, "versions": s.VersionWeights})
				}
				fmt.Fprintf(c.App.Writer, "regions:  %s\nversions: %s\n", weightsText(s.RegionWeights, s.Regions), weightsText(s.VersionWeights, nil))
				return nil
			}
			level, current, err := weightLevel(s, given)
			if err != nil {
				return err
			}
			sum := 0
			for _, n := range given {
				sum += n
			}
			if sum != 100 {
				return usageErr("env weights: %s add up to %d; they must add up to 100 (names left out are set to 0); nothing changed", pairsText(given), sum)
			}
			body := maps.Clone(given)
			for k, n := range current {
				if _, ok := given[k]; !ok && n != 0 {
					body[k] = 0
				}
			}
			got, err := cl.SetWeights(c.Context, level, body)
			if err != nil {
				return envErr(err)
			}
			if asJSON {
				return printJSON(c.App.Writer, got)
			}
			var order []string
			if level == "region" {
				order = s.Regions
			}
			if maps.Equal(got, current) {
				fmt.Fprintf(c.App.Writer, "%s weights were already %s: nothing changed\n", level, weightsText(got, order))
				return nil
			}
			fmt.Fprintf(c.App.Writer, "%s weights %s -> %s\n", level, weightsText(current, order), weightsText(got, order))
			return nil
		},
	}
}

// weightLevel says whether the names given are regions or versions (with
// an artifact: what the environment can weight), and the current weights
// of that level.
func weightLevel(s localenv.State, given map[string]int) (string, map[string]int, error) {
	var regions, versions, unknown []string
	for _, k := range slices.Sorted(maps.Keys(given)) {
		switch {
		case slices.Contains(s.Regions, k):
			regions = append(regions, k)
		case slices.Contains(s.Artifacts, k):
			versions = append(versions, k)
		default:
			unknown = append(unknown, k)
		}
	}
	switch {
	case len(unknown) > 0:
		return "", nil, usageErr("env weights: %s: neither a region (%s) nor a version of this environment (%s)",
			strings.Join(unknown, ", "), strings.Join(s.Regions, ", "), strings.Join(s.Artifacts, ", "))
	case len(regions) > 0 && len(versions) > 0:
		return "", nil, usageErr("env weights: give regions (%s) or versions (%s), not both at once", strings.Join(regions, ", "), strings.Join(versions, ", "))
	case len(regions) > 0:
		return "region", s.RegionWeights, nil
	}
	return "version", s.VersionWeights, nil
}

func pairsText(w map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, w[k]))
	}
	return strings.Join(parts, " ")
}
