package deploys

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/specfile"
)

// World is what online checks read; the activities.Registry is one. Online
// checks only read (weights, release state, samples, the load): they never
// change anything.
type World interface {
	Traffic(t activities.Target) (activities.Traffic, error)
	Release(t activities.Target) (activities.Release, error)
	Signals(t activities.Target) (activities.Signals, error)
	Runner(t activities.Target) (activities.Runner, error)
}

// Online says which providers online checks may read: those the CLI can
// reach (Reachable) are read; the others are named in the report as not
// checked.
type Online struct {
	World World
	// Reachable reports whether provider can be read from here (local
	// with an environment URL; others when asked for with --online).
	Reachable func(provider string) bool
	// Timeout bounds each read (default 10s).
	Timeout time.Duration
}

// Report is what the online checks did: the checks that ran and what they
// saw, and the ones skipped and why. Problems go to the Checker.
type Report struct {
	Ran     []string
	Skipped []string
}

func (o Online) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	d := o.Timeout
	if d <= 0 {
		d = 10 * time.Second
	}
	return context.WithTimeout(parent, d)
}

// Can reports whether provider is read, noting a skip in r.
func (o Online) Can(r *Report, what, provider string) bool {
	if o.World != nil && o.Reachable != nil && o.Reachable(provider) {
		return true
	}
	r.Skipped = append(r.Skipped, fmt.Sprintf("%s (provider %s): not reachable from here (pass --local-env for local, --online for the others)", what, provider))
	return false
}

// Root parses data for locating fields in online problems.
func Root(data []byte) *yaml.Node {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil
	}
	return &root
}

// Why shortens a provider error for a message.
func Why(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time"
	}
	return err.Error()
}

// CheckOnline checks a parsed deploy spec against the world: the release
// state and traffic weights can be read, the version to deploy is not the
// stable one, and each analysis metric answers for the stable version.
func (s *Spec) CheckOnline(ctx context.Context, c *specfile.Checker, o Online, version string) Report {
	var r Report
	stable := ""
	if o.Can(&r, "release", s.Release.Provider) {
		rel, err := o.World.Release(s.Release)
		var st activities.ReleaseState
		if err == nil {
			cctx, cancel := o.ctx(ctx)
			st, err = rel.State(cctx)
			cancel()
		}
		if err != nil {
			c.Fail("release", "cannot read the release state: %s", Why(err))
		} else {
			stable = st.Stable
			r.Ran = append(r.Ran, fmt.Sprintf("release: read the state (stable %s, running %s)", orNone(st.Stable), orNone(strings.Join(st.Running, ", "))))
			if st.Service != "" && st.Service != s.Service {
				c.Fail("service", "%q is not the service of this release target, which serves %q", s.Service, st.Service)
			}
			if st.Stable == "" {
				c.Fail("release", "the release target has no stable version to compare the canary with or roll back to")
			}
			if version != "" && version == st.Stable {
				c.Fail("release", "--version %s is already the stable version: nothing to deploy", version)
			}
		}
	}
	if o.Can(&r, "traffic", s.Traffic.Provider) {
		tr, err := o.World.Traffic(s.Traffic)
		var w activities.Weights
		if err == nil {
			cctx, cancel := o.ctx(ctx)
			w, err = tr.Weights(cctx)
			cancel()
		}
		if err != nil {
			c.Fail("traffic", "cannot read the weights: %s", Why(err))
		} else {
			r.Ran = append(r.Ran, "traffic: read the weights ("+FormatWeights(w)+")")
		}
	}
	if !o.Can(&r, "analysis metrics", s.Analysis.Provider) {
		return r
	}
	sig, err := o.World.Signals(s.Analysis.Target)
	if err != nil {
		c.Fail("analysis", "cannot build the signals client: %s", Why(err))
		return r
	}
	for i, m := range s.Analysis.Metrics {
		p := fmt.Sprintf("analysis.metrics[%d]", i)
		scope := map[string]string{"version": stable}
		if m.BaselineScope != nil {
			scope = map[string]string{}
			for k, v := range m.BaselineScope {
				scope[k] = strings.ReplaceAll(strings.ReplaceAll(v, "{{stable}}", stable), "{{canary}}", stable)
			}
		}
		q := activities.Query{Metric: m.Metric, Expr: m.Expr, Scope: scope, Window: m.Window.D(), Params: m.Params}
		cctx, cancel := o.ctx(ctx)
		smp, err := sig.Sample(cctx, q)
		cancel()
		switch {
		case err != nil:
			c.Fail(p, "the signals provider refused the query for the stable version: %s", Why(err))
		case smp.NoData:
			r.Ran = append(r.Ran, fmt.Sprintf("%s (%s): answered, but no data for the stable version now (samples are inconclusive until requests arrive)", p, m.Name))
		default:
			r.Ran = append(r.Ran, fmt.Sprintf("%s (%s): %g for the stable version", p, m.Name, smp.Value))
		}
	}
	return r
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// FormatWeights writes weights sorted by key: "east=50 west=50".
func FormatWeights(w activities.Weights) string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, w[k])
	}
	return orNone(strings.Join(parts, " "))
}

// LoadChecked reads, parses and checks a deploy spec offline and, when o
// has a World, online; file names it in errors.
func LoadChecked(ctx context.Context, path string, reg Checker, o Online, version string) (*Spec, Report, error) {
	data, name, err := shelf.Read(path)
	if err != nil {
		return nil, Report{}, err
	}
	s, err := Parse(name, data, reg)
	if err != nil || o.World == nil {
		return s, Report{}, err
	}
	c := &specfile.Checker{File: name, Root: Root(data)}
	r := s.CheckOnline(ctx, c, o, version)
	return s, r, c.Errs.Err()
}
