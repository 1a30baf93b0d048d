// Package chaos is a provider that wraps another provider and makes a share
// of its calls fail the way cloud APIs fail: a call that times out, a call
// that is throttled, a call answered with a 5xx. It exists to prove that the
// activities converge under such faults (they read before they write, and
// Temporal retries them), not to break real environments.
//
// Settings, e.g. around the local provider at region level:
//
//	{provider: chaos, config: {wrap: local, config: {level: region},
//	 share: 0.3, seed: 7, kinds: [timeout, throttle, 5xx], delay: 3s}}
//
// What a failed call did to the world, by kind:
//
//   - throttle and 5xx: the call is refused before it reaches the wrapped
//     provider, so nothing changed;
//   - timeout: the call IS carried out by the wrapped provider, and then its
//     answer is lost: the caller waits for delay (or until its context ends)
//     and gets ErrTimeout. This is the hard case for idempotency: a retry
//     finds the change already made.
//
// Decisions come from one seeded stream per seed, shared by every client the
// provider builds (the activities build a client per call), so a given seed
// gives the same sequence of faults for the same sequence of calls.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drillship/drillship/activities"
)

// Name is the provider's name in specs.
const Name = "chaos"

// Fault kinds, as settings spell them.
const (
	KindTimeout  = "timeout"
	KindThrottle = "throttle"
	Kind5xx      = "5xx"
)

var allKinds = []string{KindTimeout, KindThrottle, Kind5xx}

// DefaultDelay is how long a timed-out call hangs when settings name none.
const DefaultDelay = 3 * time.Second

// Injected faults. None is permanent: each is what a retry is for.
var (
	ErrTimeout   = errors.New("request timed out (injected; the call was carried out, its answer lost)")
	ErrThrottled = errors.New("429 Too Many Requests: rate exceeded (injected)")
	ErrServer    = errors.New("503 Service Unavailable (injected)")
)

// Settings are the chaos provider's settings.
type Settings struct {
	Wrap   string         `json:"wrap"`             // the wrapped provider's name
	Config map[string]any `json:"config,omitempty"` // the wrapped provider's settings
	Share  float64        `json:"share"`            // 0..1: share of calls that fail
	Seed   int64          `json:"seed"`
	Kinds  []string       `json:"kinds,omitempty"` // default: all of timeout, throttle, 5xx
	Delay  string         `json:"delay,omitempty"` // how long a timed-out call hangs; default 3s
}

// Stats counts calls and the faults injected into them.
type Stats struct {
	Calls     int `json:"calls"`
	Timeouts  int `json:"timeouts"`
	Throttles int `json:"throttles"`
	Errors5xx int `json:"errors5xx"`
}

// Faults is the number of calls that failed.
func (s Stats) Faults() int { return s.Timeouts + s.Throttles + s.Errors5xx }

// Chaos is the state that every client built by its provider shares: the
// wrapped registry, the seeded decision streams and the counts.
type Chaos struct {
	inner *activities.Registry

	mu      sync.Mutex
	streams map[int64]*rand.Rand
	stats   Stats
}

// New returns chaos over the providers of inner. inner must not contain the
// chaos provider itself (a worker builds it from the same provider list,
// without chaos).
func New(inner *activities.Registry) *Chaos {
	return &Chaos{inner: inner, streams: map[int64]*rand.Rand{}}
}

// Provider returns the chaos provider over inner; see New.
func Provider(inner *activities.Registry) activities.Provider { return New(inner).Provider() }

// Stats returns the counts so far.
func (c *Chaos) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Provider returns the provider whose clients share c's state.
func (c *Chaos) Provider() activities.Provider {
	return activities.Provider{
		Name: Name,
		Traffic: func(cfg map[string]any) (activities.Traffic, error) {
			in, s, err := c.settings(cfg, activities.CapTraffic)
			if err != nil {
				return nil, err
			}
			t, err := c.inner.Traffic(in)
			if err != nil {
				return nil, err
			}
			return &traffic{c.injector(s), t}, nil
		},
		Release: func(cfg map[string]any) (activities.Release, error) {
			in, s, err := c.settings(cfg, activities.CapRelease)
			if err != nil {
				return nil, err
			}
			r, err := c.inner.Release(in)
			if err != nil {
				return nil, err
			}
			return &release{c.injector(s), r}, nil
		},
		Signals: func(cfg map[string]any) (activities.Signals, error) {
			in, s, err := c.settings(cfg, activities.CapSignals)
			if err != nil {
				return nil, err
			}
			sig, err := c.inner.Signals(in)
			if err != nil {
				return nil, err
			}
			return &signals{c.injector(s), sig}, nil
		},
		Faults: func(cfg map[string]any) (activities.Faults, error) {
			in, s, err := c.settings(cfg, activities.CapFaults)
			if err != nil {
				return nil, err
			}
			f, err := c.inner.Faults(in)
			if err != nil {
				return nil, err
			}
			return &faults{c.injector(s), f}, nil
		},
		Database: func(cfg map[string]any) (activities.Database, error) {
			in, s, err := c.settings(cfg, activities.CapDatabase)
			if err != nil {
				return nil, err
			}
			db, err := c.inner.Database(in)
			if err != nil {
				return nil, err
			}
			return &database{c.injector(s), db}, nil
		},
		Runner: func(cfg map[string]any) (activities.Runner, error) {
			in, s, err := c.settings(cfg, activities.CapRunner)
			if err != nil {
				return nil, err
			}
			r, err := c.inner.Runner(in)
			if err != nil {
				return nil, err
			}
			if lr, ok := r.(activities.LoadReader); ok {
				return &loadRunner{runner{c.injector(s), r}, lr}, nil
			}
			return &runner{c.injector(s), r}, nil
		},
	}
}

type parsed struct {
	share float64
	seed  int64
	kinds []string
	delay time.Duration
}

// settings decodes and checks cfg and the wrapped target's settings for
// capability. It does no I/O.
func (c *Chaos) settings(cfg map[string]any, capability string) (activities.Target, parsed, error) {
	var s Settings
	if err := activities.DecodeConfig(cfg, &s); err != nil {
		return activities.Target{}, parsed{}, err
	}
	if s.Wrap == "" {
		return activities.Target{}, parsed{}, fmt.Errorf("config: wrap: missing (allowed for %s: %s)", capability, strings.Join(c.inner.Names(capability), ", "))
	}
	if s.Wrap == Name {
		return activities.Target{}, parsed{}, errors.New("config: wrap: chaos cannot wrap itself")
	}
	if s.Share < 0 || s.Share > 1 {
		return activities.Target{}, parsed{}, fmt.Errorf("config: share %g: allowed 0..1", s.Share)
	}
	p := parsed{share: s.Share, seed: s.Seed, kinds: s.Kinds, delay: DefaultDelay}
	if len(p.kinds) == 0 {
		p.kinds = allKinds
	}
	for _, k := range p.kinds {
		if !slices.Contains(allKinds, k) {
			return activities.Target{}, parsed{}, fmt.Errorf("config: kinds: %q: allowed %s", k, strings.Join(allKinds, ", "))
		}
	}
	if s.Delay != "" {
		d, err := time.ParseDuration(s.Delay)
		if err != nil || d < 0 {
			return activities.Target{}, parsed{}, fmt.Errorf("config: delay %q: allowed a duration such as 500ms or 3s", s.Delay)
		}
		p.delay = d
	}
	in := activities.Target{Provider: s.Wrap, Config: s.Config}
	if err := c.inner.Validate(capability, in); err != nil {
		return activities.Target{}, parsed{}, fmt.Errorf("config: wrap: %w", err)
	}
	return in, p, nil
}

func (c *Chaos) injector(p parsed) *injector { return &injector{c: c, p: p} }

// injector decides, call by call, whether a call fails and how.
type injector struct {
	c *Chaos
	p parsed
}

// draw takes the next decision from the seed's stream: "" for none, else a
// kind.
func (in *injector) draw() string {
	c := in.c
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.streams[in.p.seed]
	if !ok {
		r = rand.New(rand.NewPCG(uint64(in.p.seed), 0x6472696c6c))
		c.streams[in.p.seed] = r
	}
	c.stats.Calls++
	// Both numbers are drawn on every call so that the stream advances the
	// same way whatever the share and kinds.
	u, k := r.Float64(), r.IntN(len(in.p.kinds))
	if u >= in.p.share {
		return ""
	}
	kind := in.p.kinds[k]
	switch kind {
	case KindTimeout:
		c.stats.Timeouts++
	case KindThrottle:
		c.stats.Throttles++
	case Kind5xx:
		c.stats.Errors5xx++
	}
	return kind
}

// call runs do under the next decision: refused before do for throttle and
// 5xx, carried out and then answered with a timeout for timeout.
func (in *injector) call(ctx context.Context, op string, do func() error) error {
	switch in.draw() {
	case KindThrottle:
		return fmt.Errorf("chaos: %s: %w", op, ErrThrottled)
	case Kind5xx:
		return fmt.Errorf("chaos: %s: %w", op, ErrServer)
	case KindTimeout:
		_ = do() // the change lands; only its answer is lost
		t := time.NewTimer(in.p.delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: %s: %w: %w", op, ErrTimeout, ctx.Err())
		case <-t.C:
			return fmt.Errorf("chaos: %s: %w", op, ErrTimeout)
		}
	}
	return do()
}

type traffic struct {
	in *injector
	t  activities.Traffic
}

func (t *traffic) SetWeights(ctx context.Context, w activities.Weights) error {
	return t.in.call(ctx, "traffic.SetWeights", func() error { return t.t.SetWeights(ctx, w) })
}

func (t *traffic) Weights(ctx context.Context) (w activities.Weights, err error) {
	err = t.in.call(ctx, "traffic.Weights", func() (e error) { w, e = t.t.Weights(ctx); return e })
	if err != nil {
		return nil, err
	}
	return w, nil
}

type release struct {
	in *injector
	r  activities.Release
}

func (r *release) State(ctx context.Context) (s activities.ReleaseState, err error) {
	err = r.in.call(ctx, "release.State", func() (e error) { s, e = r.r.State(ctx); return e })
	if err != nil {
		return activities.ReleaseState{}, err
	}
	return s, nil
}

func (r *release) Deploy(ctx context.Context, version string) error {
	return r.in.call(ctx, "release.Deploy", func() error { return r.r.Deploy(ctx, version) })
}

func (r *release) Promote(ctx context.Context, version string) error {
	return r.in.call(ctx, "release.Promote", func() error { return r.r.Promote(ctx, version) })
}

func (r *release) Stop(ctx context.Context, version string) error {
	return r.in.call(ctx, "release.Stop", func() error { return r.r.Stop(ctx, version) })
}

func (r *release) Prune(ctx context.Context, current string, keep int) (removed []string, err error) {
	err = r.in.call(ctx, "release.Prune", func() (e error) { removed, e = r.r.Prune(ctx, current, keep); return e })
	if err != nil {
		return nil, err
	}
	return removed, nil
}

type signals struct {
	in *injector
	s  activities.Signals
}

func (s *signals) Sample(ctx context.Context, q activities.Query) (smp activities.Sample, err error) {
	err = s.in.call(ctx, "signals.Sample", func() (e error) { smp, e = s.s.Sample(ctx, q); return e })
	if err != nil {
		return activities.Sample{}, err
	}
	return smp, nil
}

type faults struct {
	in *injector
	f  activities.Faults
}

func (f *faults) Inject(ctx context.Context, ft activities.Fault) (h string, err error) {
	var inner error
	err = f.in.call(ctx, "faults.Inject", func() error { h, inner = f.f.Inject(ctx, ft); return inner })
	if err != nil && err != inner {
		return "", err // the answer, handle and all, was lost
	}
	return h, err // the provider's own failure keeps its handle
}

func (f *faults) Stop(ctx context.Context, ft activities.Fault, handle string) (r activities.StopResult, err error) {
	err = f.in.call(ctx, "faults.Stop", func() (e error) { r, e = f.f.Stop(ctx, ft, handle); return e })
	return r, err
}

// database wraps the Database methods only: a wrapped provider's Workload
// (RTO/RPO measurement) is not offered through chaos, since a fault in the
// measuring client would be counted as lost writes.
type database struct {
	in *injector
	db activities.Database
}

func (d *database) Status(ctx context.Context) (n []activities.DBNode, err error) {
	err = d.in.call(ctx, "database.Status", func() (e error) { n, e = d.db.Status(ctx); return e })
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (d *database) Promote(ctx context.Context, node string) error {
	return d.in.call(ctx, "database.Promote", func() error { return d.db.Promote(ctx, node) })
}

func (d *database) Fence(ctx context.Context, node string) error {
	return d.in.call(ctx, "database.Fence", func() error { return d.db.Fence(ctx, node) })
}

func (d *database) Rebuild(ctx context.Context, node string) error {
	return d.in.call(ctx, "database.Rebuild", func() error { return d.db.Rebuild(ctx, node) })
}

type runner struct {
	in *injector
	r  activities.Runner
}

func (r *runner) Run(ctx context.Context, a activities.Action) (out activities.Output, err error) {
	err = r.in.call(ctx, "runner.Run", func() (e error) { out, e = r.r.Run(ctx, a); return e })
	if err != nil {
		return activities.Output{}, err
	}
	return out, nil
}

// loadRunner keeps the wrapped runner's LoadReader, so that a drill's
// snapshot still records the load (and its reads meet chaos too).
type loadRunner struct {
	runner
	lr activities.LoadReader
}

func (r *loadRunner) Load(ctx context.Context) (m float64, err error) {
	err = r.in.call(ctx, "runner.Load", func() (e error) { m, e = r.lr.Load(ctx); return e })
	return m, err
}
