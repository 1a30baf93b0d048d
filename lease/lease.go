// Package lease serialises deploys and drills per target: a strongly
// consistent lease per key, held by a workflow id, kept by one small lock
// workflow per key on Temporal itself.
package lease

import (
	"context"
	"errors"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
)

var errNotBuilt = errors.New("lease: not built yet")

// DeployKeys returns the keys a deploy holds.
func DeployKeys(spec deploys.Spec) []string { return nil }

// DrillKeys returns the keys a drill holds.
func DrillKeys(spec drills.Spec) []string { return nil }

// AcquireInput asks for every key for Holder.
type AcquireInput struct {
	Keys   []string `json:"keys"`
	Holder string   `json:"holder"`
	Parent string   `json:"parent,omitempty"`
	What   string   `json:"what,omitempty"`
}

// AcquireResult says whether all keys were granted, else which key is held by whom.
type AcquireResult struct {
	Granted  bool   `json:"granted"`
	Key      string `json:"key,omitempty"`
	HeldBy   string `json:"heldBy,omitempty"`
	HeldWhat string `json:"heldWhat,omitempty"`
}

// ReleaseInput releases keys held by Holder.
type ReleaseInput struct {
	Keys   []string `json:"keys"`
	Holder string   `json:"holder"`
}

// Activities let workflows acquire and release leases.
type Activities struct{ Client client.Client }

// AcquireLease acquires in.Keys for in.Holder.
func (a *Activities) AcquireLease(ctx context.Context, in AcquireInput) (AcquireResult, error) {
	return AcquireResult{}, errNotBuilt
}

// ReleaseLease releases in.Keys held by in.Holder.
func (a *Activities) ReleaseLease(ctx context.Context, in ReleaseInput) error { return errNotBuilt }

// Acquire acquires in.Keys for in.Holder.
func Acquire(ctx context.Context, c client.Client, in AcquireInput) (AcquireResult, error) {
	return AcquireResult{}, errNotBuilt
}

// Release releases in.Keys held by in.Holder.
func Release(ctx context.Context, c client.Client, in ReleaseInput) error { return errNotBuilt }

// Register registers the lock workflow and the activities on w.
func Register(w worker.Registry, c client.Client) {}
