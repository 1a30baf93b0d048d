package worker

import (
	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/exec"
	"github.com/drillship/drillship/activities/haproxy"
	"github.com/drillship/drillship/activities/httpprobe"
	"github.com/drillship/drillship/activities/local"
	"github.com/drillship/drillship/activities/postgres"
	"github.com/drillship/drillship/activities/prometheus"
)

// ProviderOptions are the worker-level settings providers need.
type ProviderOptions struct {
	// LocalEnvURL is the control API of the local environment.
	LocalEnvURL string
}

// Providers returns the registry of every provider drillship ships. Adding
// a provider is one package and one line here.
func Providers(o ProviderOptions) *activities.Registry {
	return activities.NewRegistry(
		local.Provider(o.LocalEnvURL),
		haproxy.Provider(),
		postgres.Provider(),
		prometheus.Provider(),
		httpprobe.Provider(),
		exec.Provider(),
	)
}
