package localenv

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/drillship/drillship/retention"
)

// deployLocked starts instances of version in every region (those of a region
// that is down stay down until it recovers) and records its artifact.
// started is false when it was already running.
func (e *Env) deployLocked(version string) (started bool, err error) {
	if !nameRE.MatchString(version) || version == noneLabel {
		return false, badRequest("version %q: allowed are letters, digits, '.', '_', '-' (1-63), not %q", version, noneLabel)
	}
	if e.runningLocked(version) {
		return false, nil
	}
	var made []*instance
	for _, r := range e.regions {
		in := e.newInstance(r, version)
		if !e.regionDownLocked(r) {
			if err := in.start(); err != nil {
				for _, m := range made {
					m.stop()
				}
				return false, err
			}
		}
		made = append(made, in)
	}
	for _, in := range made {
		e.instances[in.region][version] = []*instance{in}
	}
	if !slices.Contains(e.artifacts, version) {
		e.artifacts = append(e.artifacts, version)
	}
	if _, ok := e.versionW[version]; !ok {
		e.versionW[version] = 0 // a canary gets traffic only when asked
	}
	e.log.Info("version deployed", "version", version, "regions", e.regions)
	return true, nil
}

func (e *Env) deploy(version string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.deployLocked(version)
}

// stopVersion stops every instance of version. The stable version cannot be
// stopped: promote another one first.
func (e *Env) stopVersion(version string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.runningLocked(version) {
		return false, nil
	}
	if version == e.stable {
		return false, conflict("version %q: is the stable version; promote another version before stopping it", version)
	}
	for _, r := range e.regions {
		for _, in := range e.instances[r][version] {
			in.stop()
		}
		delete(e.instances[r], version)
	}
	e.log.Info("version stopped", "version", version)
	return true, nil
}

// promote records version as stable. It must be running.
func (e *Env) promote(version string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stable == version {
		return false, nil
	}
	if !e.runningLocked(version) {
		return false, conflict("version %q: not running (running: %s); deploy it first", version, strings.Join(e.runningListLocked(), ", "))
	}
	prev := e.stable
	e.stable = version
	e.promotes++
	e.promoted[version] = e.promotes
	e.log.Info("version promoted", "version", version, "previous", prev)
	return true, nil
}

// prune deletes the artifacts that neither current (the version serving
// after a deploy; "" means the stable one) nor a rollback needs, by the rule
// of package retention, and returns them, failed canaries first. The stable
// and running versions always stay.
func (e *Env) prune(current string, keep int) ([]string, error) {
	if keep < 0 {
		return nil, badRequest("keep %d: allowed 0 or more", keep)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if current == "" {
		current = e.stable
	}
	if !slices.Contains(e.artifacts, current) {
		return nil, badRequest("current %q: not an artifact (artifacts: %s)", current, strings.Join(e.artifacts, ", "))
	}
	arts := make([]retention.Artifact, len(e.artifacts))
	for i, a := range e.artifacts {
		arts[i] = retention.Artifact{
			Version: a, Deployed: int64(i), Promoted: e.promoted[a],
			Running: a == e.stable || e.runningLocked(a),
		}
	}
	kept, removed := retention.Plan(arts, current, keep)
	for _, a := range removed {
		delete(e.versionW, a)
		delete(e.promoted, a)
	}
	e.artifacts = kept
	if len(removed) > 0 {
		e.log.Info("artifacts pruned", "removed", removed, "kept", kept, "current", current)
	}
	return removed, nil
}

// promotedLocked lists the artifacts ever promoted, latest promotion last.
func (e *Env) promotedLocked() []string {
	out := slices.Clone(e.artifacts)
	out = slices.DeleteFunc(out, func(v string) bool { return e.promoted[v] == 0 })
	slices.SortFunc(out, func(a, b string) int { return cmp.Compare(e.promoted[a], e.promoted[b]) })
	return out
}

func (e *Env) runningLocked(version string) bool {
	for _, r := range e.regions {
		if len(e.instances[r][version]) > 0 {
			return true
		}
	}
	return false
}

func (e *Env) runningListLocked() []string {
	set := map[string]bool{}
	for _, r := range e.regions {
		for v, ins := range e.instances[r] {
			if len(ins) > 0 {
				set[v] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// setWeights changes the named weights; names must exist (regions, or
// versions with an artifact) and each weight be 0..100. Weights are relative
// shares, like weighted DNS records: they need not sum to 100.
func (e *Env) setWeights(level string, w map[string]int) (map[string]int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	target, known := e.regionW, e.regions
	if level == levelVersion {
		target, known = e.versionW, e.artifacts
	}
	names := slices.Sorted(maps.Keys(w))
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, badRequest("weights.%s: unknown %s (allowed: %s)", n, level, strings.Join(known, ", "))
		}
		if w[n] < 0 || w[n] > 100 {
			return nil, badRequest("weights.%s: %d is out of range (allowed 0..100)", n, w[n])
		}
	}
	for _, n := range names {
		target[n] = w[n]
	}
	if len(names) > 0 {
		e.log.Info("weights set", "level", level, "weights", w)
	}
	return maps.Clone(target), nil
}

const (
	levelRegion  = "region"
	levelVersion = "version"
)

// State is what GET /api/state answers.
type State struct {
	Service        string          `json:"service"`
	Regions        []string        `json:"regions"`
	RegionWeights  map[string]int  `json:"regionWeights"`
	VersionWeights map[string]int  `json:"versionWeights"`
	Stable         string          `json:"stable"`
	Running        []string        `json:"running"`
	Artifacts      []string        `json:"artifacts"`
	Promoted       []string        `json:"promoted"` // artifacts ever promoted, latest promotion last
	Faults         []FaultRecord   `json:"faults"`   // active ones
	Shed           []string        `json:"shed"`
	Load           Load            `json:"load"`
	Instances      []InstanceState `json:"instances"`
}

// Load is the load generator's setting.
type Load struct {
	RPS        int     `json:"rps"`
	Multiplier float64 `json:"multiplier"`
}

// InstanceState is one instance as the proxy sees it.
type InstanceState struct {
	Region  string `json:"region"`
	Version string `json:"version"`
	URL     string `json:"url"`
	Serving bool   `json:"serving"`
	Healthy bool   `json:"healthy"`
}

func (e *Env) state() State {
	ins := e.instanceList(nil)
	faults := e.faultList(true)
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := State{
		Service:        e.service,
		Regions:        slices.Clone(e.regions),
		RegionWeights:  maps.Clone(e.regionW),
		VersionWeights: maps.Clone(e.versionW),
		Stable:         e.stable,
		Running:        e.runningListLocked(),
		Artifacts:      append([]string{}, e.artifacts...),
		Promoted:       e.promotedLocked(),
		Faults:         faults,
		Shed:           []string{},
		Load:           Load{RPS: max(e.rps, 0), Multiplier: e.loadMult},
		Instances:      []InstanceState{},
	}
	for d, on := range e.shed {
		if on {
			s.Shed = append(s.Shed, d)
		}
	}
	sort.Strings(s.Shed)
	for _, in := range ins {
		s.Instances = append(s.Instances, InstanceState{
			Region: in.region, Version: in.version, URL: in.url(), Serving: in.serving(), Healthy: in.healthy.Load(),
		})
	}
	return s
}

// apiError is an error with the HTTP status the control API answers with.
type apiError struct {
	status int
	msg    string
}

func (a *apiError) Error() string { return a.msg }

func badRequest(format string, args ...any) error {
	return &apiError{400, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{404, fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &apiError{409, fmt.Sprintf(format, args...)}
}

func statusOf(err error) int {
	var a *apiError
	if errors.As(err, &a) {
		return a.status
	}
	return 500
}
