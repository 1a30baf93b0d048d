package activities

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Capability names, as specs and error messages spell them.
const (
	CapTraffic  = "traffic"
	CapRelease  = "release"
	CapSignals  = "signals"
	CapFaults   = "faults"
	CapDatabase = "database"
	CapRunner   = "runner"
)

// Registry maps provider names to providers. The worker builds one with every
// provider it ships; the CLI uses the same one to validate specs.
type Registry struct {
	providers map[string]Provider

	mu      sync.Mutex
	clients map[string]any // built clients, by capability, provider and settings
}

// NewRegistry returns a registry holding ps. A duplicate name panics: it is a
// programming error, found at start-up.
func NewRegistry(ps ...Provider) *Registry {
	r := &Registry{providers: map[string]Provider{}, clients: map[string]any{}}
	for _, p := range ps {
		if _, dup := r.providers[p.Name]; dup {
			panic("activities: provider registered twice: " + p.Name)
		}
		r.providers[p.Name] = p
	}
	return r
}

// Names lists the providers that offer capability, sorted.
func (r *Registry) Names(capability string) []string {
	var out []string
	for name, p := range r.providers {
		if p.has(capability) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (p Provider) has(capability string) bool {
	switch capability {
	case CapTraffic:
		return p.Traffic != nil
	case CapRelease:
		return p.Release != nil
	case CapSignals:
		return p.Signals != nil
	case CapFaults:
		return p.Faults != nil
	case CapDatabase:
		return p.Database != nil
	case CapRunner:
		return p.Runner != nil
	}
	return false
}

func (r *Registry) lookup(capability string, t Target) (Provider, error) {
	if t.Provider == "" {
		return Provider{}, fmt.Errorf("provider: missing (allowed for %s: %s)", capability, strings.Join(r.Names(capability), ", "))
	}
	p, ok := r.providers[t.Provider]
	if !ok || !p.has(capability) {
		return Provider{}, fmt.Errorf("provider: %q cannot serve %s (allowed: %s)", t.Provider, capability, strings.Join(r.Names(capability), ", "))
	}
	return p, nil
}

// Validate checks that t names a provider offering capability and that the
// provider accepts its settings. It does no I/O.
func (r *Registry) Validate(capability string, t Target) error {
	p, err := r.lookup(capability, t)
	if err != nil {
		return err
	}
	switch capability {
	case CapTraffic:
		_, err = p.Traffic(t.Config)
	case CapRelease:
		_, err = p.Release(t.Config)
	case CapSignals:
		_, err = p.Signals(t.Config)
	case CapFaults:
		_, err = p.Faults(t.Config)
	case CapDatabase:
		_, err = p.Database(t.Config)
	case CapRunner:
		_, err = p.Runner(t.Config)
	}
	if err != nil {
		return fmt.Errorf("config (provider %s): %w", t.Provider, err)
	}
	return nil
}

// Traffic returns the traffic client for t.
func (r *Registry) Traffic(t Target) (Traffic, error) {
	return client(r, CapTraffic, t, func(p Provider) (Traffic, error) { return p.Traffic(t.Config) })
}

// Release returns the release client for t.
func (r *Registry) Release(t Target) (Release, error) {
	return client(r, CapRelease, t, func(p Provider) (Release, error) { return p.Release(t.Config) })
}

// Signals returns the signals client for t.
func (r *Registry) Signals(t Target) (Signals, error) {
	return client(r, CapSignals, t, func(p Provider) (Signals, error) { return p.Signals(t.Config) })
}

// Faults returns the faults client for t.
func (r *Registry) Faults(t Target) (Faults, error) {
	return client(r, CapFaults, t, func(p Provider) (Faults, error) { return p.Faults(t.Config) })
}

// Database returns the database client for t.
func (r *Registry) Database(t Target) (Database, error) {
	return client(r, CapDatabase, t, func(p Provider) (Database, error) { return p.Database(t.Config) })
}

// Runner returns the runner for t.
func (r *Registry) Runner(t Target) (Runner, error) {
	return client(r, CapRunner, t, func(p Provider) (Runner, error) { return p.Runner(t.Config) })
}

// client returns the client built for the same capability, provider and
// settings before, or builds it. Watches and waits ask for their clients on
// every sample; building anew would reload AWS configuration (and assume the
// role again) each time.
func client[C any](r *Registry, capability string, t Target, build func(Provider) (C, error)) (C, error) {
	var zero C
	p, err := r.lookup(capability, t)
	if err != nil {
		return zero, Permanent(err)
	}
	settings, err := json.Marshal(t.Config) // map keys are sorted: a stable key
	if err != nil {
		return zero, Permanent(fmt.Errorf("config: %w", err))
	}
	key := capability + "\x00" + t.Provider + "\x00" + string(settings)
	r.mu.Lock()
	c, ok := r.clients[key]
	r.mu.Unlock()
	if ok {
		return c.(C), nil
	}
	built, err := build(p)
	if err != nil {
		return zero, permanentIf(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[key]; ok {
		return c.(C), nil // another call built it first; share one
	}
	r.clients[key] = built
	return built, nil
}

func permanentIf(err error) error {
	if err == nil {
		return nil
	}
	return Permanent(err)
}

// DecodeConfig decodes a provider's settings into out (a pointer to a struct
// with json tags), rejecting unknown fields so that typos are caught.
//
// String values may reference environment variables as ${NAME}: they are
// expanded here, in the process that builds the client (the worker), so a
// secret written as ${PROM_TOKEN} in a spec never enters a workflow's
// history. Only the braced form is expanded, so PromQL's $1 stays as it is.
func DecodeConfig(cfg map[string]any, out any) error {
	if cfg == nil {
		cfg = map[string]any{}
	}
	b, err := json.Marshal(expandEnv(cfg))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		msg := strings.TrimPrefix(err.Error(), "json: ")
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			msg = fmt.Sprintf("field %q: expected %s, got %s", te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("config: %s", msg)
	}
	return nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func expandEnv(v any) any {
	switch x := v.(type) {
	case string:
		return envRef.ReplaceAllStringFunc(x, func(m string) string { return os.Getenv(m[2 : len(m)-1]) })
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = expandEnv(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = expandEnv(e)
		}
		return out
	}
	return v
}

// permanentError marks an error that no retry can fix: bad settings, access
// denied, a resource that does not exist.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix. Activities turn it
// into a non-retryable Temporal error.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Provider returns the provider registered under name (iam-policy reads
// their Permissions).
func (r *Registry) Provider(name string) (Provider, bool) {
	p, ok := r.providers[name]
	return p, ok
}
