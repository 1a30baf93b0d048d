package specs

import (
	"testing"

	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/worker"
)

// Every shipped spec passes the offline checks against the declarations of
// the providers the worker runs.
func TestShippedSpecsValidate(t *testing.T) {
	reg := worker.Providers(worker.ProviderOptions{})
	for _, n := range deploys.Shipped() {
		if _, err := deploys.Load(n, reg); err != nil {
			t.Errorf("deploy spec %s: %v", n, err)
		}
	}
	for _, n := range drills.Shipped() {
		if _, err := drills.Load(n, reg); err != nil {
			t.Errorf("drill spec %s: %v", n, err)
		}
	}
}
