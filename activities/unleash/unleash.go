// Package unleash is the Unleash feature-flag provider, through Unleash's
// admin API over plain HTTP:
//
//   - Runner: flag_off and flag_on turn a flag off or on in one
//     environment (a kill switch as a drill's mitigation), and flag_restore
//     puts back the state the flip found. The flip reads the flag first and
//     keeps what it found as a tag on the flag, named for the drill, so that
//     the snapshot survives worker crashes and lives where the flag lives.
//   - Traffic: a flag's gradual rollout as a deploy's canary: the
//     flexibleRollout strategy's rollout percentage is the weight of the
//     flag's on side (config.on, the version the flag releases), the rest
//     goes to its off side (config.off); on 0 turns the flag off (the
//     rollback) and 100 is the promotion. Weights are read back from
//     Unleash. Version keys rather than role keys: a promotion must leave
//     the flag fully on, where role keys would empty the canary.
package unleash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/unleash/ofunleash"
	"github.com/drillship/drillship/activities/unleash/unleashapi"
	"github.com/drillship/drillship/lab"
)

// Name is the provider name in specs.
const Name = "unleash"

// Config is the provider's settings.
//
//	url: https://unleash.example.com   # or lab: default (the lab's Unleash); exactly one
//	token: ${UNLEASH_ADMIN_TOKEN}      # an admin API token, as a ${NAME} reference
//	clientToken: ${UNLEASH_CLIENT_TOKEN}  # optional: a client token of the environment; a flip
//	                                   # then waits until the client API serves it (the lab's: known)
//	project: default                   # default: default
//	environment: production            # default: development
//	feature: checkout-v2               # the flag (traffic; actions may name their own)
//	on: v2                             # traffic: the weight key of the flag's on side (default on)
//	off: v1                            # traffic: the weight key of its off side (default off)
//	timeout: 5s                        # per admin API call
type Config struct {
	Lab         string `json:"lab,omitempty"`
	URL         string `json:"url,omitempty"`
	Token       string `json:"token,omitempty"`
	ClientToken string `json:"clientToken,omitempty"`
	Project     string `json:"project,omitempty"`
	Environment string `json:"environment,omitempty"`
	Feature     string `json:"feature,omitempty"`
	On          string `json:"on,omitempty"`
	Off         string `json:"off,omitempty"`
	Timeout     string `json:"timeout,omitempty"`
}

// Actions of the Runner.
const (
	ActionOff     = "flag_off"
	ActionOn      = "flag_on"
	ActionRestore = "flag_restore"
)

// Provider returns the unleash provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:    Name,
		Declare: Declare,
		Traffic: func(cfg map[string]any) (activities.Traffic, error) { return New(cfg) },
		Runner:  func(cfg map[string]any) (activities.Runner, error) { return New(cfg) },
	}
}

// Client drives flags of one Unleash server.
type Client struct {
	cfg     Config
	timeout time.Duration
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]{0,99}$`)

// New validates the settings; it does no I/O.
func New(cfg map[string]any) (*Client, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	switch {
	case c.Lab != "" && c.URL != "":
		return nil, errors.New("config: set one of url and lab, not both")
	case c.Lab != "":
		if err := lab.CheckRef(c.Lab); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if c.Token != "" {
			return nil, errors.New("config: token: the lab's Unleash uses the admin token in the lab's state file; leave token out")
		}
	case c.URL != "":
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("config: url %q: want the Unleash server's base URL, http(s)://host[:port][/path]", c.URL)
		}
		// Checked as written: a ${NAME} is expanded here, and the CLI that
		// validates a spec need not have the worker's secrets.
		if raw, _ := cfg["token"].(string); raw == "" {
			return nil, errors.New("config: token is required with url: an admin API token, written as a ${NAME} reference")
		}
	default:
		return nil, errors.New("config: url (the Unleash server) or lab (default: the drillship lab's Unleash) is required")
	}
	for k, v := range map[string]string{"project": c.Project, "environment": c.Environment, "feature": c.Feature} {
		if v != "" && !nameRe.MatchString(v) {
			return nil, fmt.Errorf("config: %s %q: not an Unleash name", k, v)
		}
	}
	c.On, c.Off = first(c.On, DefaultOn), first(c.Off, DefaultOff)
	if c.On == c.Off {
		return nil, fmt.Errorf("config: on and off are both %q: the flag's two sides need two weight keys", c.On)
	}
	cl := &Client{cfg: c, timeout: 5 * time.Second}
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 || d > time.Minute {
			return nil, fmt.Errorf("config: timeout %q: want a duration up to 1m such as 5s", c.Timeout)
		}
		cl.timeout = d
	}
	return cl, nil
}

// where is one flag in one environment, resolved against the lab if set.
type where struct {
	admin                 *unleashapi.Admin
	project, env, feature string
	// client reads the flag as applications do; nil without a client token.
	client *ofunleash.Provider
}

func (w where) String() string {
	return fmt.Sprintf("flag %s (project %s) in %s", w.feature, w.project, w.env)
}

// resolve finds the server and fills in defaults: the action's params, then
// the settings, then the lab's flag, then Unleash's defaults.
func (c *Client) resolve(params map[string]string) (where, error) {
	w := where{project: c.cfg.Project, env: c.cfg.Environment, feature: c.cfg.Feature}
	base, token, clientToken := c.cfg.URL, c.cfg.Token, c.cfg.ClientToken
	if c.cfg.Lab != "" {
		st, err := lab.Resolve(c.cfg.Lab)
		if errors.Is(err, lab.ErrNoLab) {
			return w, activities.Permanent(fmt.Errorf("unleash: %w", err))
		}
		if err != nil {
			return w, fmt.Errorf("unleash: %w", err)
		}
		if st.Unleash == nil {
			return w, activities.Permanent(fmt.Errorf("unleash: the lab in %s runs no Unleash (start it with `drillship lab up --flags`)", st.Dir))
		}
		u := st.Unleash
		base, token = u.URL, u.AdminToken
		if u.Environment == first(params["environment"], c.cfg.Environment, u.Environment) {
			clientToken = u.ClientToken // scoped to the lab flag's environment
		}
		w.project = first(w.project, u.Project)
		w.env = first(w.env, u.Environment)
		w.feature = first(w.feature, u.Feature)
	}
	w.project = first(params["project"], w.project, "default")
	w.env = first(params["environment"], w.env, "development")
	w.feature = first(params["feature"], w.feature)
	if w.feature == "" {
		return w, activities.Permanent(errors.New("unleash: no flag named: set params.feature or config.feature"))
	}
	for k, v := range map[string]string{"project": w.project, "environment": w.env, "feature": w.feature} {
		if !nameRe.MatchString(v) {
			return w, activities.Permanent(fmt.Errorf("unleash: %s %q: not an Unleash name", k, v))
		}
	}
	if token == "" {
		return w, activities.Permanent(errors.New("unleash: config.token is empty in the worker's environment (set the variable its ${NAME} names)"))
	}
	w.admin = unleashapi.NewAdmin(base, token, c.timeout)
	if clientToken != "" {
		w.client = ofunleash.New(strings.TrimRight(base, "/"), clientToken, 0)
		w.client.HTTP.Timeout = c.timeout
	}
	return w, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// classify makes Unleash's answers that no retry can fix permanent.
func classify(err error) error {
	if unleashapi.Client(err) {
		return activities.Permanent(err)
	}
	return err
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// snapshotTag names the tag that keeps what a drill's flip found: one per
// drill and environment (hashed: tag values are at most 50 characters).
func snapshotTag(key, env string, wasOn bool) unleashapi.Tag {
	drill := key
	if i := strings.LastIndex(key, "/"); i > 0 {
		drill = key[:i] // the key is "<drill id>/<step>"
	}
	h := sha256.Sum256([]byte(drill + "\x00" + env))
	return unleashapi.Tag{Type: "simple", Value: snapshotPrefix + onOff(wasOn) + "-" + hex.EncodeToString(h[:6])}
}

const snapshotPrefix = "drillship-was-"

// findSnapshot returns the snapshot tag of this drill and environment, if any.
func findSnapshot(ctx context.Context, w where, key string) (unleashapi.Tag, bool, bool, error) {
	tags, err := w.admin.Tags(ctx, w.feature)
	if err != nil {
		return unleashapi.Tag{}, false, false, classify(err)
	}
	on, off := snapshotTag(key, w.env, true), snapshotTag(key, w.env, false)
	for _, t := range tags {
		switch t {
		case on:
			return t, true, true, nil
		case off:
			return t, false, true, nil
		}
	}
	return unleashapi.Tag{}, false, false, nil
}

// Run runs flag_off, flag_on or flag_restore.
func (c *Client) Run(ctx context.Context, a activities.Action) (activities.Output, error) {
	w, err := c.resolve(a.Params)
	if err != nil {
		return activities.Output{}, err
	}
	switch a.Name {
	case ActionOff, ActionOn:
		return c.flip(ctx, w, a.Key, a.Name == ActionOn)
	case ActionRestore:
		return c.restore(ctx, w, a.Key)
	}
	return activities.Output{}, activities.Permanent(fmt.Errorf("unleash: action %q: allowed are %s, %s, %s", a.Name, ActionOff, ActionOn, ActionRestore))
}

// flip reads the flag, keeps what it found (once per drill: a retry after
// the flip finds the first snapshot and keeps it), sets it and reads it
// back.
func (c *Client) flip(ctx context.Context, w where, key string, on bool) (activities.Output, error) {
	e, err := w.admin.State(ctx, w.project, w.feature, w.env)
	if err != nil {
		return activities.Output{}, classify(err)
	}
	_, was, found, err := findSnapshot(ctx, w, key)
	if err != nil {
		return activities.Output{}, err
	}
	if !found {
		was = e.Enabled
		if err := w.admin.AddTag(ctx, w.feature, snapshotTag(key, w.env, was)); err != nil {
			return activities.Output{}, classify(err)
		}
	}
	if e.Enabled != on {
		if err := w.admin.Toggle(ctx, w.project, w.feature, w.env, on); err != nil {
			return activities.Output{}, classify(err)
		}
	}
	flipped := time.Now()
	after, err := w.admin.State(ctx, w.project, w.feature, w.env)
	if err != nil {
		return activities.Output{}, classify(err)
	}
	if after.Enabled != on {
		return activities.Output{}, fmt.Errorf("unleash: %s reads back %s after turning it %s", w, onOff(after.Enabled), onOff(on))
	}
	return activities.Output{Detail: fmt.Sprintf("%s: %s -> %s at %s%s (was %s before the drill; flag_restore puts that back)",
		w, onOff(e.Enabled), onOff(on), flipped.UTC().Format("15:04:05.000"), clientsSee(ctx, w, on, flipped), onOff(was))}, nil
}

// clientWait bounds how long a flip waits for the client API to serve it.
const clientWait = 10 * time.Second

// clientsSee polls the client API, as applications read it, until it
// serves the flag as set, and says when; it says so when it does not.
// Informational: whether the service obeyed is for the SLO to show.
func clientsSee(ctx context.Context, w where, on bool, flipped time.Time) string {
	if w.client == nil {
		return ""
	}
	deadline := time.Now().Add(clientWait)
	for {
		err := w.client.Fetch(ctx)
		if err == nil {
			if f, ok := w.client.Lookup(w.feature); ok && f.Enabled == on {
				return fmt.Sprintf(", served %s by the client API %dms later", onOff(on), time.Since(flipped).Milliseconds())
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return fmt.Sprintf(", client API not read (%v)", err)
			}
			return fmt.Sprintf(", the client API still served it otherwise after %s", clientWait)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// restore puts back what this drill's first flip found and drops the
// snapshot. Without a snapshot the drill never flipped the flag: nothing to
// put back.
func (c *Client) restore(ctx context.Context, w where, key string) (activities.Output, error) {
	tag, was, found, err := findSnapshot(ctx, w, key)
	if err != nil {
		return activities.Output{}, err
	}
	if !found {
		return activities.Output{Detail: fmt.Sprintf("%s: no flip of this drill recorded, nothing to put back", w)}, nil
	}
	e, err := w.admin.State(ctx, w.project, w.feature, w.env)
	if err != nil {
		return activities.Output{}, classify(err)
	}
	if e.Enabled != was {
		if err := w.admin.Toggle(ctx, w.project, w.feature, w.env, was); err != nil {
			return activities.Output{}, classify(err)
		}
		after, err := w.admin.State(ctx, w.project, w.feature, w.env)
		if err != nil {
			return activities.Output{}, classify(err)
		}
		if after.Enabled != was {
			return activities.Output{}, fmt.Errorf("unleash: %s reads back %s after putting back %s", w, onOff(after.Enabled), onOff(was))
		}
	}
	// Dropped only once the state is back, so that a crash before this
	// point restores again.
	if err := w.admin.RemoveTag(ctx, w.feature, tag); err != nil {
		return activities.Output{}, classify(err)
	}
	return activities.Output{Detail: fmt.Sprintf("%s: %s -> %s (as before the drill)", w, onOff(e.Enabled), onOff(was))}, nil
}

// Default weight keys of the flag's two sides.
const (
	DefaultOn  = "on"
	DefaultOff = "off"
)

// Weights reads the flag: off gives the on side 0; on, the on side gets
// the gradual rollout's percentage (100 when the flag is on without one).
func (c *Client) Weights(ctx context.Context) (activities.Weights, error) {
	w, err := c.resolve(nil)
	if err != nil {
		return nil, err
	}
	e, err := w.admin.State(ctx, w.project, w.feature, w.env)
	if err != nil {
		return nil, classify(err)
	}
	on := 0
	if e.Enabled {
		on = 100
		if p, _, ok := unleashapi.Rollout(e); ok {
			on = p
		}
	}
	return activities.Weights{c.cfg.On: on, c.cfg.Off: 100 - on}, nil
}

// SetWeights sets the rollout percentage to the on side's weight and turns
// the flag on, or turns it off for 0 (the rollout percentage is left as it
// was: off is the rollback, whatever the rollout).
func (c *Client) SetWeights(ctx context.Context, ws activities.Weights) error {
	on := -1
	for k, v := range ws {
		if v < 0 || v > 100 {
			return activities.Permanent(fmt.Errorf("unleash: weight %s=%d: want 0..100", k, v))
		}
		x := v
		switch k {
		case c.cfg.On:
		case c.cfg.Off:
			x = 100 - v
		default:
			return activities.Permanent(fmt.Errorf("unleash: weight key %q: allowed are %s (the flag's rollout) and %s (the rest; config.on and config.off)", k, c.cfg.On, c.cfg.Off))
		}
		if on >= 0 && on != x {
			return activities.Permanent(fmt.Errorf("unleash: weights %v: %s and %s must add up to 100", ws, c.cfg.On, c.cfg.Off))
		}
		on = x
	}
	if on < 0 {
		return nil
	}
	w, err := c.resolve(nil)
	if err != nil {
		return err
	}
	if on == 0 {
		err = w.admin.Toggle(ctx, w.project, w.feature, w.env, false)
	} else {
		// The rollout first, so that turning the flag on never exposes more
		// than the weight.
		err = w.admin.SetRollout(ctx, w.project, w.feature, w.env, on)
		if err == nil {
			err = w.admin.Toggle(ctx, w.project, w.feature, w.env, true)
		}
	}
	if err != nil {
		return classify(err)
	}
	got, err := c.Weights(ctx)
	if err != nil {
		return err
	}
	if got[c.cfg.On] != on {
		return fmt.Errorf("unleash: %s reads back %s=%d after setting %d", w, c.cfg.On, got[c.cfg.On], on)
	}
	return nil
}
