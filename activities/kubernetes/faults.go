package kubernetes

import (
	"errors"

	"github.com/drillship/drillship/activities"
)

// Placeholder so the package compiles while the faults are written.

func newFaults(cfg map[string]any) (activities.Faults, error) {
	return nil, errors.New("kubernetes faults: not yet implemented")
}

func declareFaults() activities.Declaration { return activities.Declaration{} }

func faultRules(cfg map[string]any) ([]activities.Rule, error) {
	return nil, errors.New("kubernetes faults: rules not yet implemented")
}
