package specs

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/arc"
	"github.com/drillship/drillship/activities/cloudwatch"
	"github.com/drillship/drillship/activities/ecs"
	"github.com/drillship/drillship/activities/elbv2"
	"github.com/drillship/drillship/activities/exec"
	"github.com/drillship/drillship/activities/fis"
	"github.com/drillship/drillship/activities/gatewayapi"
	"github.com/drillship/drillship/activities/haproxy"
	"github.com/drillship/drillship/activities/httpprobe"
	"github.com/drillship/drillship/activities/lambda"
	"github.com/drillship/drillship/activities/postgres"
	"github.com/drillship/drillship/activities/prometheus"
	"github.com/drillship/drillship/activities/rds"
	"github.com/drillship/drillship/lab/labprovider"
	"github.com/drillship/drillship/worker"
)

// jsonFields lists the settings a Config struct decodes, embedded ones
// included.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// The declarations cannot drift from what the providers decode: every
// setting of a provider's Config is declared, and nothing else is.
func TestDeclarationsMatchConfigs(t *testing.T) {
	reg := worker.Providers(worker.ProviderOptions{})
	for name, cfg := range map[string]any{
		prometheus.Name: prometheus.Config{}, haproxy.Name: haproxy.Config{}, httpprobe.Name: httpprobe.Config{},
		postgres.Name: postgres.Config{}, exec.Name: exec.Config{}, labprovider.Name: labprovider.Config{},
		elbv2.Name: elbv2.Config{}, arc.Name: arc.Config{}, ecs.Name: ecs.Config{}, lambda.Name: lambda.Config{},
		rds.Name: rds.Config{}, cloudwatch.Name: cloudwatch.Config{}, fis.Name: fis.Config{},
		gatewayapi.Name: gatewayapi.Config{},
	} {
		p, ok := reg.Provider(name)
		if !ok || p.Declare == nil {
			t.Errorf("%s: no declaration", name)
			continue
		}
		want := jsonFields(reflect.TypeOf(cfg))
		for _, capability := range []string{activities.CapTraffic, activities.CapRelease, activities.CapSignals, activities.CapFaults, activities.CapDatabase, activities.CapRunner} {
			if !p.Has(capability) {
				continue
			}
			var got []string
			for _, f := range p.Declare(capability).Config {
				got = append(got, f.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: declared settings %v, the Config decodes %v", name, capability, got, want)
			}
		}
	}
}
