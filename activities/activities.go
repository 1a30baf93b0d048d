package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Activities is the set of Temporal activities. Every method resolves its
// provider from the Target it is given, so one worker serves every spec.
type Activities struct {
	Reg    *Registry
	Logger *slog.Logger
	// Observe, when set, is told of every state-changing provider call (the
	// crash matrix counts them to find duplicated side effects).
	Observe func(call string)
	// LocalEnvURL is the local environment's control URL (the worker's
	// --local-env), where the `local` incident provider asks.
	LocalEnvURL string
}

// New returns the activities over reg.
func New(reg *Registry, logger *slog.Logger) *Activities {
	if logger == nil {
		logger = slog.Default()
	}
	return &Activities{Reg: reg, Logger: logger}
}

func nowMs() int64 { return time.Now().UnixMilli() }

func (a *Activities) observe(call string) {
	if a.Observe != nil {
		a.Observe(call)
	}
}

// wrap turns provider errors into what Temporal should do with them:
// permanent ones are not retried.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if IsPermanent(err) {
		return temporal.NewNonRetryableApplicationError(op+": "+err.Error(), "Permanent", err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// stopped is what a watch returns when the workflow cancels it (a hold
// ended, a phase finished): expected, so marked benign to keep it out of
// error logs.
func stopped(ctx context.Context) error {
	return temporal.NewApplicationErrorWithOptions("watch stopped: "+context.Cause(ctx).Error(), "Stopped",
		temporal.ApplicationErrorOptions{NonRetryable: true, Category: temporal.ApplicationErrorCategoryBenign, Cause: ctx.Err()})
}

// WeightsInput sets weights on a traffic target.
type WeightsInput struct {
	Target  Target  `json:"target"`
	Weights Weights `json:"weights"`
}

// WeightsResult is the weights read back after the change and when they were
// seen in effect.
type WeightsResult struct {
	Weights Weights `json:"weights"`
	At      int64   `json:"at"`
	Changed bool    `json:"changed"`
	Attempt int32   `json:"attempt"`
}

// SetWeights makes in.Weights effective. It reads first and does nothing when
// they already are (a retry after a crash changes nothing), and reads back
// after the change so that the time it returns is when they were seen.
func (a *Activities) SetWeights(ctx context.Context, in WeightsInput) (WeightsResult, error) {
	t, err := a.Reg.Traffic(in.Target)
	if err != nil {
		return WeightsResult{}, wrap("traffic", err)
	}
	cur, err := t.Weights(ctx)
	if err != nil {
		return WeightsResult{}, wrap("read weights", err)
	}
	attempt := activity.GetInfo(ctx).Attempt
	if contains(cur, in.Weights) {
		return WeightsResult{Weights: cur, At: nowMs(), Attempt: attempt}, nil
	}
	a.observe("SetWeights")
	if err := t.SetWeights(ctx, in.Weights); err != nil {
		return WeightsResult{}, wrap("set weights "+FormatWeights(in.Weights), err)
	}
	got, err := t.Weights(ctx)
	if err != nil {
		return WeightsResult{}, wrap("read weights back", err)
	}
	if !contains(got, in.Weights) {
		return WeightsResult{}, fmt.Errorf("weights read back %s, want %s", FormatWeights(got), FormatWeights(in.Weights))
	}
	activity.GetLogger(ctx).Info("weights set", "weights", FormatWeights(got))
	return WeightsResult{Weights: got, At: nowMs(), Changed: true, Attempt: attempt}, nil
}

func contains(have, want Weights) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// FormatWeights prints weights in a stable order: "v1=90 v2=10".
func FormatWeights(w Weights) string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, w[k])
	}
	return strings.Join(parts, " ")
}

// VersionInput names a version of a release target.
type VersionInput struct {
	Target  Target `json:"target"`
	Version string `json:"version"`
}

// ReleaseState reads what runs and what is kept.
func (a *Activities) ReleaseState(ctx context.Context, t Target) (ReleaseState, error) {
	r, err := a.Reg.Release(t)
	if err != nil {
		return ReleaseState{}, wrap("release", err)
	}
	s, err := r.State(ctx)
	return s, wrap("release state", err)
}

// DeployVersion starts the canary's instances, unless they already run.
func (a *Activities) DeployVersion(ctx context.Context, in VersionInput) (int64, error) {
	return a.release(ctx, in, "deploy", func(r Release, s ReleaseState) (bool, error) {
		if has(s.Running, in.Version) {
			return false, settle(r, func() error { return r.Deploy(ctx, in.Version) })
		}
		return true, r.Deploy(ctx, in.Version)
	})
}

// PromoteVersion records the version as stable, unless it already is.
func (a *Activities) PromoteVersion(ctx context.Context, in VersionInput) (int64, error) {
	return a.release(ctx, in, "promote", func(r Release, s ReleaseState) (bool, error) {
		if s.Stable == in.Version {
			return false, settle(r, func() error { return r.Promote(ctx, in.Version) })
		}
		return true, r.Promote(ctx, in.Version)
	})
}

// ScaleInput asks a release target to size the canary for Weight percent
// of the traffic.
type ScaleInput struct {
	Target  Target `json:"target"`
	Version string `json:"version"`
	Weight  int    `json:"weight"`
}

// ScaleResult says what ScaleCanary did: Scaled is false for a release
// whose canary shares its capacity with nothing (it has no CanaryScaler).
type ScaleResult struct {
	Scaled   bool  `json:"scaled"`
	Replicas int   `json:"replicas,omitempty"`
	At       int64 `json:"at"`
}

// ScaleCanary raises the canary's capacity to carry in.Weight percent of
// the traffic before it is shifted there, and waits until it is available.
// Idempotent: a canary already that large is left alone.
func (a *Activities) ScaleCanary(ctx context.Context, in ScaleInput) (ScaleResult, error) {
	r, err := a.Reg.Release(in.Target)
	if err != nil {
		return ScaleResult{}, wrap("release", err)
	}
	s, ok := r.(CanaryScaler)
	if !ok {
		return ScaleResult{At: nowMs()}, nil
	}
	n, err := s.ScaleCanary(ctx, in.Version, in.Weight)
	if err != nil {
		return ScaleResult{}, wrap(fmt.Sprintf("scale canary %s for %d%%", in.Version, in.Weight), err)
	}
	return ScaleResult{Scaled: true, Replicas: n, At: nowMs()}, nil
}

// StopVersion stops a version's instances, unless none run.
func (a *Activities) StopVersion(ctx context.Context, in VersionInput) (int64, error) {
	return a.release(ctx, in, "stop", func(r Release, s ReleaseState) (bool, error) {
		if !has(s.Running, in.Version) {
			// A release that settles counts only ready instances as
			// running: a canary someone scaled to 0 is still there.
			return false, settle(r, func() error { return r.Stop(ctx, in.Version) })
		}
		return true, r.Stop(ctx, in.Version)
	})
}

// Settling is an optional capability of a Release whose Deploy, Promote and
// Stop return only once done (a Kubernetes rollout, a canary deleted) and
// may be called again at no cost. Its state names a version as soon as it
// is asked for, before it is ready, and counts only ready instances as
// running: a retry after a crash calls them again, so that it still waits
// for readiness, and a canary scaled to 0 by someone is still stopped.
type Settling interface {
	Settles() bool
}

// settle calls again (to wait for readiness) when r settles; otherwise the
// state's word is enough.
func settle(r Release, call func() error) error {
	if s, ok := r.(Settling); ok && s.Settles() {
		return call()
	}
	return nil
}

func (a *Activities) release(ctx context.Context, in VersionInput, op string, do func(Release, ReleaseState) (bool, error)) (int64, error) {
	r, err := a.Reg.Release(in.Target)
	if err != nil {
		return 0, wrap("release", err)
	}
	s, err := r.State(ctx)
	if err != nil {
		return 0, wrap("release state", err)
	}
	changed, err := do(r, s)
	if err != nil {
		return 0, wrap(op+" "+in.Version, err)
	}
	if changed {
		a.observe(op)
		activity.GetLogger(ctx).Info("release "+op, "version", in.Version)
	}
	return nowMs(), nil
}

// PruneInput asks to prune a release target's artifacts down to Keep.
type PruneInput struct {
	Target Target `json:"target"`
	Keep   int    `json:"keep"`
	// Current is the version serving after the deploy: the new one after a
	// promotion, the stable one after a rollback. Empty (histories recorded
	// before it existed) means the provider's stable version.
	Current string `json:"current,omitempty"`
}

// PruneArtifacts deletes artifacts that neither the current version nor a
// rollback needs (see package retention), after promotions and rollbacks.
func (a *Activities) PruneArtifacts(ctx context.Context, in PruneInput) ([]string, error) {
	r, err := a.Reg.Release(in.Target)
	if err != nil {
		return nil, wrap("release", err)
	}
	current := in.Current
	if current == "" {
		s, err := r.State(ctx)
		if err != nil {
			return nil, wrap("release state", err)
		}
		current = s.Stable
	}
	removed, err := r.Prune(ctx, current, in.Keep)
	if len(removed) > 0 {
		a.observe("prune")
	}
	return removed, wrap("prune artifacts", err)
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// FaultInput injects or stops a fault. Fault.Owner is the drill's workflow
// id; providers mark what they create with it.
type FaultInput struct {
	Target Target `json:"target"`
	Fault  Fault  `json:"fault"`
	Handle string `json:"handle,omitempty"`
}

// FaultResult is the handle and when the fault was seen in effect (or ended).
// A stop says what it found: NotFound when nothing of the owner's was there
// (the fault never started), NotOurs when the handle named someone else's
// fault (left alone).
type FaultResult struct {
	Handle   string   `json:"handle"`
	At       int64    `json:"at"`
	Attempt  int32    `json:"attempt"`
	Stopped  []string `json:"stopped,omitempty"`
	NotFound bool     `json:"notFound,omitempty"`
	NotOurs  string   `json:"notOurs,omitempty"`
}

// InjectFault puts a fault in effect; providers make it idempotent. When the
// provider created the fault and then failed (an experiment that started
// but never ran), the error carries FaultResult{Handle} as its details (see
// HandleOf) so that the workflow can record what to stop.
func (a *Activities) InjectFault(ctx context.Context, in FaultInput) (FaultResult, error) {
	f, err := a.Reg.Faults(in.Target)
	if err != nil {
		return FaultResult{}, wrap("faults", err)
	}
	a.observe("inject")
	attempt := activity.GetInfo(ctx).Attempt
	h, err := f.Inject(ctx, in.Fault)
	if err != nil {
		if h == "" {
			return FaultResult{}, wrap("inject "+in.Fault.Kind, err)
		}
		return FaultResult{}, temporal.NewApplicationErrorWithOptions(
			fmt.Sprintf("inject %s: %v (created %s)", in.Fault.Kind, err, h), "InjectFailed",
			temporal.ApplicationErrorOptions{NonRetryable: IsPermanent(err), Cause: err,
				Details: []any{FaultResult{Handle: h, At: nowMs(), Attempt: attempt}}})
	}
	return FaultResult{Handle: h, At: nowMs(), Attempt: attempt}, nil
}

// HandleOf returns the handle that a failed InjectFault carries, if any. It
// only decodes the error, so workflows may call it.
func HandleOf(err error) string {
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != "InjectFailed" || !ae.HasDetails() {
		return ""
	}
	var fr FaultResult
	if ae.Details(&fr) != nil {
		return ""
	}
	return fr.Handle
}

// StopFault ends the owner's fault; ending one that is over is fine, and
// finding none of the owner's is reported (NotFound), not an error.
func (a *Activities) StopFault(ctx context.Context, in FaultInput) (FaultResult, error) {
	f, err := a.Reg.Faults(in.Target)
	if err != nil {
		return FaultResult{}, wrap("faults", err)
	}
	a.observe("stop-fault")
	r, err := f.Stop(ctx, in.Fault, in.Handle)
	if err != nil {
		return FaultResult{}, wrap("stop "+in.Fault.Kind, err)
	}
	if r.NotOurs != "" {
		activity.GetLogger(ctx).Warn("fault handle names someone else's fault: left alone", "handle", in.Handle, "notOurs", r.NotOurs)
	}
	return FaultResult{Handle: in.Handle, At: nowMs(), Attempt: activity.GetInfo(ctx).Attempt,
		Stopped: r.Stopped, NotFound: r.NotFound, NotOurs: r.NotOurs}, nil
}

// ActionInput runs a runbook step.
type ActionInput struct {
	Target Target `json:"target"`
	Action Action `json:"action"`
}

// ActionResult says what the action did and when it ran.
type ActionResult struct {
	Output    Output `json:"output"`
	StartedAt int64  `json:"startedAt"`
	EndedAt   int64  `json:"endedAt"`
	Attempt   int32  `json:"attempt"`
}

// RunAction runs one runbook action. Action.Key (the drill id and step)
// is the same on every attempt; see Runner for which actions are safe to
// retry.
func (a *Activities) RunAction(ctx context.Context, in ActionInput) (ActionResult, error) {
	start := nowMs()
	r, err := a.Reg.Runner(in.Target)
	if err != nil {
		return ActionResult{}, wrap("runner", err)
	}
	a.observe("action:" + in.Action.Name)
	out, err := r.Run(ctx, in.Action)
	if err != nil {
		return ActionResult{Output: out, StartedAt: start, EndedAt: nowMs()}, wrap("action "+in.Action.Name, err)
	}
	return ActionResult{Output: out, StartedAt: start, EndedAt: nowMs(), Attempt: activity.GetInfo(ctx).Attempt}, nil
}
