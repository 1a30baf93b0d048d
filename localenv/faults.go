package localenv

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
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
	Owner     string            `json:"owner,omitempty"` // the drill that put it in; empty: a person
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

// inject puts a fault in effect for owner, or returns the owner's active
// fault with the same kind and params (a retried inject). Faults of other
// owners never satisfy it: each owner gets a fault of its own, so that ending
// one leaves the others in effect. id, when given, names the new fault
// (people and tests may choose it); it must not be taken by another fault.
// StartedAt is taken once the fault is in effect.
func (e *Env) inject(req FaultRequest) (FaultRecord, error) {
	f, err := e.newFault(req.Kind, req.Params)
	if err != nil {
		return FaultRecord{}, err
	}
	if req.ID != "" && !nameRE.MatchString(req.ID) {
		return FaultRecord{}, badRequest("id %q: allowed are letters, digits, '.', '_', '-' (1-63)", req.ID)
	}
	if len(req.Owner) > 256 {
		return FaultRecord{}, badRequest("owner: at most 256 characters")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur := e.activeLocked(f.key, req.Owner); cur != nil && (req.ID == "" || req.ID == cur.ID) {
		return cur.record(), nil
	}
	if req.ID != "" && e.byIDLocked(req.ID) != nil {
		return FaultRecord{}, conflict("id %q: taken by another fault (GET /api/faults lists them)", req.ID)
	}
	if kind := req.Kind; kind == FaultRegionDown {
		for _, ins := range e.instances[f.Params["region"]] {
			for _, in := range ins {
				in.stop()
			}
		}
	}
	f.ID, f.Owner = req.ID, req.Owner
	if f.ID == "" {
		f.ID = e.newIDLocked()
	}
	f.StartedAt = nowMs()
	e.faults = append(e.faults, f)
	e.log.Info("fault injected", "id", f.ID, "kind", f.Kind, "params", f.Params, "owner", f.Owner, "at", f.StartedAt)
	return f.record(), nil
}

// newIDLocked mints a fault id that no environment has used before, not
// only this one: a drill started before a restart of the environment still
// holds the id of its fault, and a counter starting again at f1 would hand
// that id to someone else's fault. Milliseconds since the epoch plus a
// random part make it unique across restarts and across environments.
func (e *Env) newIDLocked() string {
	for {
		id := "f" + strconv.FormatInt(time.Now().UnixMilli(), 36) + fmt.Sprintf("%04x", rand.N(1<<16))
		if e.byIDLocked(id) == nil {
			return id
		}
	}
}

func (e *Env) byIDLocked(id string) *fault {
	for _, f := range e.faults {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// stopFault ends fault id whoever owns it: the manual override for people
// (DELETE /api/faults/{id}); drillship itself stops faults with stopOwned.
// Ending an ended fault returns its record as is.
func (e *Env) stopFault(id string) (FaultRecord, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.byIDLocked(id)
	if f == nil {
		return FaultRecord{}, notFound("fault %q: no such fault (GET /api/faults lists them)", id)
	}
	if f.EndedAt != 0 {
		return f.record(), nil
	}
	return e.endLocked(f)
}

// StopAnswer is what POST /api/faults/stop answers.
type StopAnswer struct {
	// Stopped are the owner's faults of that kind and params that are over
	// now, ended by this call or before it.
	Stopped []FaultRecord `json:"stopped"`
	// NotFound: the owner has no fault of that kind and params at all.
	NotFound bool `json:"notFound,omitempty"`
	// NotOurs: the id named a fault of another owner or kind, left alone.
	NotOurs string `json:"notOurs,omitempty"`
}

// belongsTo says whose a fault is, for StopAnswer.NotOurs.
func belongsTo(f *fault) string {
	if f.Owner == "" {
		return f.ID + " belongs to no drill (put in by hand)"
	}
	return f.ID + " belongs to " + f.Owner
}

// stopOwned ends req.Owner's fault of req.Kind and req.Params, and nothing
// else. It verifies before it ends anything: the fault named by req.ID is
// ended only when its owner and kind and params match; otherwise it is left
// alone (NotOurs) and the owner's fault is looked up by kind and params.
// Without an owner (a caller from before ownership) it ends only the fault
// req.ID names, and only one that has no owner either.
func (e *Env) stopOwned(req FaultRequest) (StopAnswer, error) {
	want, err := e.newFault(req.Kind, req.Params)
	if err != nil {
		return StopAnswer{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ans := StopAnswer{Stopped: []FaultRecord{}}
	if req.ID != "" {
		if f := e.byIDLocked(req.ID); f != nil {
			if f.Owner != req.Owner {
				ans.NotOurs = belongsTo(f)
			} else if f.key != want.key {
				ans.NotOurs = fmt.Sprintf("%s is %s, not %s", f.ID, f.key, want.key)
			} else {
				r, err := e.endIfActiveLocked(f)
				if err != nil {
					return StopAnswer{}, err
				}
				ans.Stopped = append(ans.Stopped, r)
				return ans, nil
			}
		}
	}
	if req.Owner == "" {
		ans.NotFound = true
		return ans, nil
	}
	// Every fault of this owner, kind and params: the active ones are ended,
	// ended ones are reported (a retry after a stop is no miss).
	for _, f := range e.faults {
		if f.Owner != req.Owner || f.key != want.key {
			continue
		}
		r, err := e.endIfActiveLocked(f)
		if err != nil {
			return StopAnswer{}, err
		}
		ans.Stopped = append(ans.Stopped, r)
	}
	ans.NotFound = len(ans.Stopped) == 0
	return ans, nil
}

func (e *Env) endIfActiveLocked(f *fault) (FaultRecord, error) {
	if f.EndedAt != 0 {
		return f.record(), nil
	}
	return e.endLocked(f)
}

// endLocked ends f. A region stays down while another owner's region_down
// on it is still in effect.
func (e *Env) endLocked(f *fault) (FaultRecord, error) {
	if f.Kind == FaultRegionDown && !e.regionDownOtherLocked(f.Params["region"], f) {
		for _, ins := range e.instances[f.Params["region"]] {
			for _, in := range ins {
				if err := in.start(); err != nil {
					return FaultRecord{}, err // stays active: a retry restarts the rest
				}
			}
		}
	}
	f.EndedAt = nowMs()
	e.log.Info("fault stopped", "id", f.ID, "kind", f.Kind, "params", f.Params, "owner", f.Owner, "at", f.EndedAt)
	return f.record(), nil
}

// activeLocked returns owner's active fault with key.
func (e *Env) activeLocked(key, owner string) *fault {
	for _, f := range e.faults {
		if f.EndedAt == 0 && f.key == key && f.Owner == owner {
			return f
		}
	}
	return nil
}

// regionDownLocked reports whether region has an active outage.
func (e *Env) regionDownLocked(region string) bool { return e.regionDownOtherLocked(region, nil) }

// regionDownOtherLocked reports whether region has an active outage other
// than except.
func (e *Env) regionDownOtherLocked(region string, except *fault) bool {
	for _, f := range e.faults {
		if f != except && f.EndedAt == 0 && f.Kind == FaultRegionDown && f.Params["region"] == region {
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
