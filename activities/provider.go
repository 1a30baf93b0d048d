// Package activities holds the Temporal activities of drillship and the small
// interfaces that providers implement. Activities are the only code that
// touches the world; each one reads the current state before it changes it,
// so a retry after a crash does no harm.
//
// A provider (local, haproxy, route53, ...) lives in its own sub-package and
// offers one or more capabilities: Traffic, Release, Signals, Faults,
// Database, Runner. Adding a provider means adding one package and one line
// where the worker builds its Registry.
package activities

import (
	"context"
	"time"
)

// Target names the provider that serves a capability and its settings. The
// settings are provider-specific; each provider decodes and validates them
// strictly (see DecodeConfig), so a typo in a spec fails before anything runs.
type Target struct {
	Provider string         `json:"provider" yaml:"provider"`
	Config   map[string]any `json:"config,omitempty" yaml:"config,omitempty"`
}

// Weights maps a backend (a version such as "v2", or a region such as
// "east") to its share of traffic, 0..100. Workflows never range over it
// without sorting the keys first.
type Weights map[string]int

// Traffic moves user traffic between backends.
type Traffic interface {
	// SetWeights makes the given weights effective. Backends not named keep
	// their weight. It must be idempotent.
	SetWeights(ctx context.Context, w Weights) error
	// Weights reads the weights back from the system itself.
	Weights(ctx context.Context) (Weights, error)
}

// ReleaseState is what a release provider knows about a service.
type ReleaseState struct {
	// Service is the service the release target serves, when the provider
	// knows it: a spec naming another service is refused before anything
	// changes.
	Service   string   `json:"service,omitempty"`
	Stable    string   `json:"stable"`    // the version serving by default
	Running   []string `json:"running"`   // versions with running instances
	Artifacts []string `json:"artifacts"` // kept artifacts, oldest first
}

// Release starts, promotes and retires versions of a service.
type Release interface {
	State(ctx context.Context) (ReleaseState, error)
	// Deploy starts instances of version beside the stable one (a canary)
	// and records its artifact. Idempotent.
	Deploy(ctx context.Context, version string) error
	// Promote records version as the stable one. Idempotent.
	Promote(ctx context.Context, version string) error
	// Stop stops the running instances of version. Idempotent.
	Stop(ctx context.Context, version string) error
	// Prune deletes artifacts by the rule of package retention: it keeps
	// current (the version serving after the deploy), its rollback target
	// (the version promoted before it), running versions and the newest
	// promoted ones up to keep, and removes failed canaries first. It never
	// removes what it cannot prove is not the rollback target. It returns
	// what it deleted. Idempotent.
	Prune(ctx context.Context, current string, keep int) ([]string, error)
}

// CanaryScaler is an optional capability of a Release whose canary has
// instances of its own beside the stable ones (a canary Deployment): before
// the canary is given a larger share of traffic, its capacity is raised to
// carry that share, and the call returns once the added instances are
// available. A canary on one pod must not take 100% of the traffic. It
// never scales down (the canary is stopped as a whole). It returns the
// canary's instances.
type CanaryScaler interface {
	ScaleCanary(ctx context.Context, version string, weight int) (int, error)
}

// Query asks a signals provider for one value.
//
// Metric is one of the portable names below or a provider-specific one;
// Expr carries a provider expression (PromQL, CloudWatch metric math, an URL
// for an HTTP probe). Scope narrows the population, such as
// {"version": "v2"} or {"region": "east"}.
type Query struct {
	Metric string            `json:"metric" yaml:"metric"`
	Expr   string            `json:"expr,omitempty" yaml:"expr,omitempty"`
	Scope  map[string]string `json:"scope,omitempty" yaml:"scope,omitempty"`
	// Window is the look-back over which rates and quantiles are taken.
	Window time.Duration `json:"window,omitempty" yaml:"window,omitempty"`
	// Params are provider-specific (expected status, body match, alarm name).
	Params map[string]string `json:"params,omitempty" yaml:"params,omitempty"`
}

// Portable metric names every signals provider should understand where it can.
const (
	MetricErrorRate  = "error_rate"  // share of failed requests, 0..1
	MetricLatencyP99 = "latency_p99" // seconds
	MetricRequests   = "request_rate"
	MetricUp         = "up"    // probe: 1 healthy, 0 not
	MetricAlarm      = "alarm" // 1 when the alarm is firing, 0 when not
)

// Sample is one observed value. At is when the world was in that state as
// the provider saw it (an alarm's own transition time, the time a probe got
// its answer), in Unix milliseconds: it is what ledger marks are made of.
type Sample struct {
	Value  float64 `json:"value"`
	At     int64   `json:"at"`
	NoData bool    `json:"noData,omitempty"`
	Detail string  `json:"detail,omitempty"`
}

// Signals reads SLIs, probes and alarms.
type Signals interface {
	Sample(ctx context.Context, q Query) (Sample, error)
}

// Fault is one fault to inject. Kind is provider-specific ("region_down",
// "error_rate", "latency", "blackhole", "experiment").
type Fault struct {
	Kind   string            `json:"kind" yaml:"kind"`
	Params map[string]string `json:"params,omitempty" yaml:"params,omitempty"`
	// Owner is who puts the fault in: the drill's workflow id. A spec never
	// sets it; the workflow does. Providers mark what they create with it
	// (a field, a tag, a name prefix) so that a restore ends only its own
	// faults and never one a person or another drill put in.
	Owner string `json:"owner,omitempty" yaml:"-"`
}

// StopResult says what Faults.Stop did.
type StopResult struct {
	// Stopped lists the owner's faults that are over now (ended by this call
	// or found ended: a retried Stop is a success, not a miss).
	Stopped []string `json:"stopped,omitempty"`
	// NotFound: nothing of this owner and kind exists to stop (it was never
	// started). Not an error.
	NotFound bool `json:"notFound,omitempty"`
	// NotOurs is set when the handle names a fault of someone else, which
	// was left alone: "<id> belongs to <owner>".
	NotOurs string `json:"notOurs,omitempty"`
}

// Faults injects and stops faults.
//
// Ownership: Inject marks what it creates with f.Owner, and Stop acts only
// on faults that carry the same owner and kind. Stop first tries the handle;
// when the handle is empty (the inject failed or crashed before the handle
// was recorded), unknown, or names a fault of someone else, it looks the
// owner's faults of this kind up instead. With an empty Owner (runs started
// before ownership existed) Stop ends only the fault its handle names, and
// only if that fault has no owner and the same kind.
type Faults interface {
	// Inject puts the fault in effect and returns a handle that Stop takes
	// (an experiment id, for example). Idempotent for the same fault and
	// owner. When it fails after the fault was created, it returns the
	// handle together with the error.
	Inject(ctx context.Context, f Fault) (handle string, err error)
	// Stop ends the owner's fault. Stopping one that is over is fine.
	Stop(ctx context.Context, f Fault, handle string) (StopResult, error)
}

// NotOurs formats StopResult.NotOurs.
func NotOurs(id, owner string) string {
	if owner == "" {
		owner = "no drill (put in by hand)"
	}
	return id + " belongs to " + owner
}

// DBNode is one database node as the provider sees it.
type DBNode struct {
	Name      string  `json:"name"`
	Role      string  `json:"role"` // primary | replica | down | fenced
	Streaming bool    `json:"streaming,omitempty"`
	LagBytes  int64   `json:"lagBytes,omitempty"`
	LagSecs   float64 `json:"lagSecs,omitempty"`
}

// Database promotes, fences and rebuilds database nodes.
type Database interface {
	Status(ctx context.Context) ([]DBNode, error)
	// Promote makes node the primary and waits until it accepts writes.
	// Promoting the current primary is a no-op.
	Promote(ctx context.Context, node string) error
	// Fence stops node from accepting writes (or from running at all).
	Fence(ctx context.Context, node string) error
	// Rebuild makes node a streaming replica of the current primary.
	Rebuild(ctx context.Context, node string) error
}

// Action is one runbook or restore step for a Runner.
type Action struct {
	Name   string            `json:"name" yaml:"name"`
	Params map[string]string `json:"params,omitempty" yaml:"params,omitempty"`
	Argv   []string          `json:"argv,omitempty" yaml:"argv,omitempty"`
	// Key identifies this run of the action across retries: "<drill id>/<step>".
	// The workflow sets it; runners whose actions are not idempotent by
	// nature hand it to the action (exec: env DRILLSHIP_IDEMPOTENCY_KEY) so
	// that a retried attempt can tell it already did its work.
	Key string `json:"key,omitempty" yaml:"-"`
}

// Output is what a Runner observed while it ran an action.
type Output struct {
	Detail   string `json:"detail,omitempty"`
	ExitCode int    `json:"exitCode,omitempty"`
}

// Runner runs provider-specific actions (exec, shed load, repoint an app).
//
// Actions are retried after a crash or a transient error, so what is safe
// to retry matters:
//   - local (shed, unshed, load): safe. Each sets a state rather than
//     toggling or adding to it, so a second run finds it set.
//   - exec: only as safe as the command. It gets Action.Key in
//     DRILLSHIP_IDEMPOTENCY_KEY, the same on every attempt, and should use
//     it to skip work it has already done.
type Runner interface {
	Run(ctx context.Context, a Action) (Output, error)
}

// LoadReader is an optional capability of a Runner whose "load" action sets
// a load multiplier: it reads the multiplier in effect, so that a snapshot
// can record it and PutBack can restore it.
type LoadReader interface {
	Load(ctx context.Context) (float64, error)
}

// Provider builds clients of one provider from a target's settings. A
// constructor validates the settings and must not do I/O, so that the CLI can
// call it to check a spec. Nil constructors are capabilities the provider
// does not have.
type Provider struct {
	Name     string
	Traffic  func(cfg map[string]any) (Traffic, error)
	Release  func(cfg map[string]any) (Release, error)
	Signals  func(cfg map[string]any) (Signals, error)
	Faults   func(cfg map[string]any) (Faults, error)
	Database func(cfg map[string]any) (Database, error)
	Runner   func(cfg map[string]any) (Runner, error)

	// Permissions lists the cloud permissions that a capability needs with
	// these settings (`drillship iam-policy`). Nil for providers without any.
	Permissions func(capability string, cfg map[string]any) ([]Permission, error)

	// Rules lists the Kubernetes RBAC grants a capability needs with these
	// settings (`drillship rbac`). Nil for providers that do not talk to a
	// cluster.
	Rules func(capability string, cfg map[string]any) ([]Rule, error)

	// Declare says what the provider accepts for a capability (declare.go).
	// Nil: nothing declared yet; specs are then checked by the constructors
	// alone.
	Declare func(capability string) Declaration
}

// Permission is one least-privilege grant: actions on resources.
type Permission struct {
	Actions   []string `json:"actions"`
	Resources []string `json:"resources"`
}

// Rule is one Kubernetes RBAC grant: verbs on resources of API groups.
// Namespaced rules go into a Role in Namespace; Cluster rules (nodes, for
// example) into a ClusterRole.
type Rule struct {
	APIGroups     []string `json:"apiGroups"`
	Resources     []string `json:"resources"`
	Verbs         []string `json:"verbs"`
	ResourceNames []string `json:"resourceNames,omitempty"`
	Namespace     string   `json:"namespace,omitempty"`
	Cluster       bool     `json:"cluster,omitempty"`
}

// Finding is the result of one preflight check.
type Finding struct {
	Check  string `json:"check"` // "pdb", "readiness-probe", "rbac", ...
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	// Refuse: the check failed and the settings say a failure stops the
	// run before anything changes (otherwise it is a warning).
	Refuse bool `json:"refuse,omitempty"`
}

// Preflighter is an optional capability of a client: the checks a careful
// operator makes before anything changes (a PodDisruptionBudget exists, the
// worker may do what the run needs). It reads and never writes.
type Preflighter interface {
	Preflight(ctx context.Context) ([]Finding, error)
}

// WorkloadResult is what a workload measured across a fault.
type WorkloadResult struct {
	Acked          int64  `json:"acked"`          // writes acknowledged in all
	Missing        int64  `json:"missing"`        // acknowledged writes absent afterwards (RPO, in rows)
	FirstFailureAt int64  `json:"firstFailureAt"` // first failed write, Unix ms
	RecoveredAt    int64  `json:"recoveredAt"`    // first successful write after it
	Detail         string `json:"detail,omitempty"`
}

// Workloader is an optional capability of a Database client: it writes
// numbered rows to whichever node is primary until writes have failed and
// then held again for holdFor (or ctx ends), then counts the acknowledged
// writes missing on the primary. heartbeat reports progress.
type Workloader interface {
	Workload(ctx context.Context, interval, holdFor time.Duration, heartbeat func(details any)) (WorkloadResult, error)
}
