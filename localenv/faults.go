package localenv

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Fault kinds the local environment understands.
const (
	FaultRegionDown     = "region_down"
	FaultErrorRate      = "error_rate"
	FaultLatency        = "latency"
	FaultBadVersion     = "bad_version"
	FaultDependencyDown = "dependency_down"
)

// depRecs is the sample service's one dependency.
const depRecs = "recs"

// dependencies lists what dependency_down, shed and unshed accept.
var dependencies = []string{depRecs}

const defaultBadRate = 0.1

// faultKinds lists each kind's parameters; required ones are marked.
var faultKinds = map[string]map[string]bool{
	FaultRegionDown:     {"region": true},
	FaultErrorRate:      {"rate": true, "region": false, "version": false},
	FaultLatency:        {"ms": true, "region": false, "version": false},
	FaultBadVersion:     {"version": true, "rate": false},
	FaultDependencyDown: {"dependency": true},
}

// FaultRecord is one injected fault and its ground truth: the Unix ms at
// which it took effect and at which it ended (0 while active).
type FaultRecord struct {
	ID        string            `json:"id"`
	Kind      string            `json:"kind"`
	Params    map[string]string `json:"params"`
	StartedAt int64             `json:"startedAt"`
	EndedAt   int64             `json:"endedAt,omitempty"`
	Active    bool              `json:"active"`
}

type fault struct {
	FaultRecord
	key  string  // kind + normalized params: the idempotency key
	rate float64 // error_rate, bad_version
	ms   int     // latency
}

func (f *fault) record() FaultRecord {
	r := f.FaultRecord
	r.Params = maps.Clone(f.Params)
	r.Active = f.EndedAt == 0
	return r
}

// matches reports whether a request served by region/version is affected.
func (f *fault) matches(region, version string) bool {
	if r, ok := f.Params["region"]; ok && r != region {
		return false
	}
	if v, ok := f.Params["version"]; ok && v != version {
		return false
	}
	return true
}

// newFault validates kind and params and normalizes them (defaults filled
// in, numbers in one spelling) so that equal faults have equal keys.
func (e *Env) newFault(kind string, params map[string]string) (*fault, error) {
	spec, ok := faultKinds[kind]
	if !ok {
		return nil, badRequest("kind %q: allowed %s", kind, strings.Join(slices.Sorted(maps.Keys(faultKinds)), ", "))
	}
	for k := range params {
		if _, ok := spec[k]; !ok {
			return nil, badRequest("params.%s: not a parameter of %s (allowed: %s)", k, kind, strings.Join(slices.Sorted(maps.Keys(spec)), ", "))
		}
	}
	for k, req := range spec {
		if req && params[k] == "" {
			return nil, badRequest("params.%s: required for %s", k, kind)
		}
	}
	f := &fault{FaultRecord: FaultRecord{Kind: kind, Params: map[string]string{}}}
	for k, v := range params {
		switch k {
		case "region":
			if !slices.Contains(e.regions, v) {
				return nil, badRequest("params.region %q: allowed %s", v, strings.Join(e.regions, ", "))
			}
		case "version":
			// Any well-formed name: a bad version is set up before it runs.
			if !nameRE.MatchString(v) {
				return nil, badRequest("params.version %q: allowed are letters, digits, '.', '_', '-' (1-63)", v)
			}
		case "dependency":
			if !slices.Contains(dependencies, v) {
				return nil, badRequest("params.dependency %q: allowed %s", v, strings.Join(dependencies, ", "))
			}
		case "rate":
			r, err := strconv.ParseFloat(v, 64)
			if err != nil || !(r > 0 && r <= 1) {
				return nil, badRequest("params.rate %q: allowed a number in (0, 1]", v)
			}
			f.rate, v = r, strconv.FormatFloat(r, 'g', -1, 64)
		case "ms":
			ms, err := strconv.Atoi(v)
			if err != nil || ms < 1 || ms > 60000 {
				return nil, badRequest("params.ms %q: allowed an integer 1..60000", v)
			}
			f.ms, v = ms, strconv.Itoa(ms)
		}
		f.Params[k] = v
	}
	if kind == FaultBadVersion && f.rate == 0 {
		f.rate = defaultBadRate
		f.Params["rate"] = strconv.FormatFloat(defaultBadRate, 'g', -1, 64)
	}
	var b strings.Builder
	b.WriteString(kind)
	for _, k := range slices.Sorted(maps.Keys(f.Params)) {
		fmt.Fprintf(&b, "&%s=%s", k, f.Params[k])
	}
	f.key = b.String()
	return f, nil
}

// inject puts a fault in effect, or returns the active one with the same
// kind and params. StartedAt is taken once the fault is in effect.
func (e *Env) inject(kind string, params map[string]string) (FaultRecord, error) {
	f, err := e.newFault(kind, params)
	if err != nil {
		return FaultRecord{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur := e.activeLocked(f.key); cur != nil {
		return cur.record(), nil
	}
	if kind == FaultRegionDown {
		for _, ins := range e.instances[f.Params["region"]] {
			for _, in := range ins {
				in.stop()
			}
		}
	}
	e.nextFault++
	f.ID = "f" + strconv.Itoa(e.nextFault)
	f.StartedAt = nowMs()
	e.faults = append(e.faults, f)
	e.log.Info("fault injected", "id", f.ID, "kind", kind, "params", f.Params, "at", f.StartedAt)
	return f.record(), nil
}

// stopFault ends fault id. Ending an ended fault returns its record as is.
func (e *Env) stopFault(id string) (FaultRecord, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range e.faults {
		if f.ID != id {
			continue
		}
		if f.EndedAt != 0 {
			return f.record(), nil
		}
		return e.endLocked(f)
	}
	return FaultRecord{}, notFound("fault %q: no such fault (GET /api/faults lists them)", id)
}

// stopMatching ends the active fault with the same kind and params, if any.
func (e *Env) stopMatching(kind string, params map[string]string) (FaultRecord, bool, error) {
	f, err := e.newFault(kind, params)
	if err != nil {
		return FaultRecord{}, false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.activeLocked(f.key)
	if cur == nil {
		return FaultRecord{}, false, nil
	}
	r, err := e.endLocked(cur)
	return r, true, err
}

func (e *Env) endLocked(f *fault) (FaultRecord, error) {
	if f.Kind == FaultRegionDown {
		for _, ins := range e.instances[f.Params["region"]] {
			for _, in := range ins {
				if err := in.start(); err != nil {
					return FaultRecord{}, err // stays active: a retry restarts the rest
				}
			}
		}
	}
	f.EndedAt = nowMs()
	e.log.Info("fault stopped", "id", f.ID, "kind", f.Kind, "params", f.Params, "at", f.EndedAt)
	return f.record(), nil
}

func (e *Env) activeLocked(key string) *fault {
	for _, f := range e.faults {
		if f.EndedAt == 0 && f.key == key {
			return f
		}
	}
	return nil
}

// regionDownLocked reports whether region has an active outage.
func (e *Env) regionDownLocked(region string) bool {
	for _, f := range e.faults {
		if f.EndedAt == 0 && f.Kind == FaultRegionDown && f.Params["region"] == region {
			return true
		}
	}
	return false
}

func (e *Env) faultList(activeOnly bool) []FaultRecord {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := []FaultRecord{}
	for _, f := range e.faults {
		if !activeOnly || f.EndedAt == 0 {
			out = append(out, f.record())
		}
	}
	return out
}
