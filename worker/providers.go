package worker

import (
	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/arc"
	"github.com/drillship/drillship/activities/chaos"
	"github.com/drillship/drillship/activities/cloudwatch"
	"github.com/drillship/drillship/activities/ecs"
	"github.com/drillship/drillship/activities/elbv2"
	"github.com/drillship/drillship/activities/exec"
	"github.com/drillship/drillship/activities/fis"
	"github.com/drillship/drillship/activities/gatewayapi"
	"github.com/drillship/drillship/activities/haproxy"
	"github.com/drillship/drillship/activities/httpprobe"
	"github.com/drillship/drillship/activities/kubernetes"
	"github.com/drillship/drillship/activities/lambda"
	"github.com/drillship/drillship/activities/local"
	"github.com/drillship/drillship/activities/postgres"
	"github.com/drillship/drillship/activities/prometheus"
	"github.com/drillship/drillship/activities/rds"
	"github.com/drillship/drillship/activities/route53"
	"github.com/drillship/drillship/activities/unleash"
	"github.com/drillship/drillship/lab/labprovider"
)

// ProviderOptions are the worker-level settings providers need.
type ProviderOptions struct {
	// LocalEnvURL is the control API of the local environment.
	LocalEnvURL string
}

// Providers returns the registry of every provider drillship ships. Adding
// a provider is one package and one line here.
func Providers(o ProviderOptions) *activities.Registry {
	base := []activities.Provider{
		local.Provider(o.LocalEnvURL),
		haproxy.Provider(),
		postgres.Provider(),
		prometheus.Provider(),
		httpprobe.Provider(),
		exec.Provider(),
		labprovider.Provider(),
		unleash.Provider(),
		gatewayapi.Provider(),
		kubernetes.Provider(),
		// AWS: credentials come from the default chain (or roleArn) in the
		// worker's process; constructors do no I/O, so the CLI validates
		// specs with them offline.
		route53.Provider(),
		elbv2.Provider(),
		arc.Provider(),
		ecs.Provider(),
		lambda.Provider(),
		rds.Provider(),
		cloudwatch.Provider(),
		fis.Provider(),
	}
	// chaos wraps any of the others with timeouts, throttling and 5xx, for
	// game days against a flaky cloud: {provider: chaos, config: {wrap: ...}}.
	return activities.NewRegistry(append(base, chaos.Provider(activities.NewRegistry(base...)))...)
}
