package activities

import (
	"context"
	"fmt"
	"strconv"
)

// SnapshotInput names what a drill may change besides its faults: the
// traffic targets of its weight and failover steps, and the runner whose
// load it sets.
type SnapshotInput struct {
	Traffic []Target `json:"traffic"`
	Runner  *Target  `json:"runner,omitempty"`
}

// TargetWeights is one traffic target's weights.
type TargetWeights struct {
	Target  Target  `json:"target"`
	Weights Weights `json:"weights"`
}

// Snapshot is the world as preflight saw it, for restore to put back.
// Load is nil when there is no runner or it cannot read its load; Runner is
// where Load was read (PutBack sets it there).
type Snapshot struct {
	Weights []TargetWeights `json:"weights"`
	Load    *float64        `json:"load,omitempty"`
	Runner  *Target         `json:"runner,omitempty"`
	At      int64           `json:"at"`
}

// PutBackResult lists what PutBack had to change ("weights local: east=0
// west=100 -> east=50 west=50", "load 2x -> 1x"); empty when the world
// already matched the snapshot.
type PutBackResult struct {
	Changed []string `json:"changed"`
	At      int64    `json:"at"`
}

// loadAction is the runner action that sets the load multiplier (the one the
// drill uses to raise it).
const loadAction = "load"

// TakeSnapshot reads the weights of every traffic target and, when the
// runner can tell, the load multiplier. It only reads.
func (a *Activities) TakeSnapshot(ctx context.Context, in SnapshotInput) (Snapshot, error) {
	s := Snapshot{Weights: []TargetWeights{}}
	for _, t := range in.Traffic {
		tr, err := a.Reg.Traffic(t)
		if err != nil {
			return Snapshot{}, wrap("traffic", err)
		}
		w, err := tr.Weights(ctx)
		if err != nil {
			return Snapshot{}, wrap("read weights of "+t.Provider, err)
		}
		s.Weights = append(s.Weights, TargetWeights{Target: t, Weights: w})
	}
	if in.Runner != nil {
		r, err := a.Reg.Runner(*in.Runner)
		if err != nil {
			return Snapshot{}, wrap("runner", err)
		}
		if lr, ok := r.(LoadReader); ok {
			l, err := lr.Load(ctx)
			if err != nil {
				return Snapshot{}, wrap("read load", err)
			}
			s.Load, s.Runner = &l, in.Runner
		}
	}
	s.At = nowMs()
	return s, nil
}

// PutBack makes the world match the snapshot again. It reads each value,
// sets only those that differ, and reads them back to verify, so running it
// twice changes nothing the second time. Backends absent from the snapshot
// are left as they are (the traffic providers only set what they are given).
func (a *Activities) PutBack(ctx context.Context, s Snapshot) (PutBackResult, error) {
	res := PutBackResult{Changed: []string{}}
	for _, tw := range s.Weights {
		tr, err := a.Reg.Traffic(tw.Target)
		if err != nil {
			return res, wrap("traffic", err)
		}
		cur, err := tr.Weights(ctx)
		if err != nil {
			return res, wrap("read weights of "+tw.Target.Provider, err)
		}
		if contains(cur, tw.Weights) {
			continue
		}
		// Only the backends that differ: the others keep their weight.
		diff := Weights{}
		for k, v := range tw.Weights {
			if cur[k] != v {
				diff[k] = v
			}
		}
		a.observe("PutBack:weights")
		if err := tr.SetWeights(ctx, diff); err != nil {
			return res, wrap("put back weights "+FormatWeights(diff), err)
		}
		got, err := tr.Weights(ctx)
		if err != nil {
			return res, wrap("read weights back", err)
		}
		if !contains(got, tw.Weights) {
			return res, fmt.Errorf("put back weights of %s: read back %s, want %s", tw.Target.Provider, FormatWeights(got), FormatWeights(tw.Weights))
		}
		res.Changed = append(res.Changed, fmt.Sprintf("weights %s: %s -> %s", tw.Target.Provider, FormatWeights(sub(cur, diff)), FormatWeights(diff)))
	}
	if s.Load != nil && s.Runner != nil {
		r, err := a.Reg.Runner(*s.Runner)
		if err != nil {
			return res, wrap("runner", err)
		}
		lr, ok := r.(LoadReader)
		if !ok {
			return res, wrap("put back load", Permanent(fmt.Errorf("runner %s cannot read its load", s.Runner.Provider)))
		}
		cur, err := lr.Load(ctx)
		if err != nil {
			return res, wrap("read load", err)
		}
		if cur != *s.Load {
			a.observe("PutBack:load")
			m := strconv.FormatFloat(*s.Load, 'g', -1, 64)
			if _, err := r.Run(ctx, Action{Name: loadAction, Params: map[string]string{"multiplier": m}}); err != nil {
				return res, wrap("put back load "+m+"x", err)
			}
			got, err := lr.Load(ctx)
			if err != nil {
				return res, wrap("read load back", err)
			}
			if got != *s.Load {
				return res, fmt.Errorf("put back load: read back %gx, want %gx", got, *s.Load)
			}
			res.Changed = append(res.Changed, fmt.Sprintf("load %gx -> %gx", cur, *s.Load))
		}
	}
	if len(res.Changed) > 0 {
		a.Logger.Info("put back", "changed", res.Changed)
	}
	res.At = nowMs()
	return res, nil
}

// sub is have restricted to the keys of want, for a short report.
func sub(have, want Weights) Weights {
	out := Weights{}
	for k := range want {
		out[k] = have[k]
	}
	return out
}
