package lease_test

import (
	"slices"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/lease"
)

// anySettings accepts every provider setting: these tests are about keys,
// and the worker's registry would tie them to the workflows package.
type anySettings struct{}

func (anySettings) Validate(string, activities.Target) error { return nil }

func TestDeployAndDrillKeys(t *testing.T) {
	reg := anySettings{}
	web, err := deploys.Load("web-canary", reg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"service:web@local", "traffic:local/weights/version"}
	if got := lease.DeployKeys(*web); !slices.Equal(got, want) {
		t.Fatalf("web-canary: %v, want %v", got, want)
	}
	for name, want := range map[string][]string{
		// The drill runs a deploy of web: it holds what that deploy holds.
		"rollback-drill":  {"faults:local", "service:web@local", "traffic:local/weights/version"},
		"region-failover": {"faults:local", "traffic:local/weights/region"},
		"db-primary-loss": {`faults:postgres{"lab":"default"}`},
		// Which kinds a target may inject does not change where they land:
		// the zone outage and the pod kill exclude each other.
		"k8s-zone-outage": {`faults:kubernetes{"namespace":"web"}`},
		"k8s-pod-kill":    {`faults:kubernetes{"namespace":"web"}`},
	} {
		d, err := drills.Load(name, reg)
		if err != nil {
			t.Fatal(err)
		}
		if got := lease.DrillKeys(*d); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

func TestTrafficKeyIsCanonical(t *testing.T) {
	a := activities.Target{Provider: "elbv2", Config: map[string]any{
		"region": "us-east-1", "listenerArn": "arn:l", "targetGroups": map[string]any{"stable": "a", "canary": "b"},
		"roleArn": "arn:role/one", "maxWait": "5m",
	}}
	b := activities.Target{Provider: "elbv2", Config: map[string]any{
		"targetGroups": map[string]any{"canary": "b", "stable": "a"}, "listenerArn": "arn:l", "region": "us-east-1",
		"roleArn": "arn:role/two",
	}}
	if lease.TrafficKey(a) != lease.TrafficKey(b) {
		t.Fatalf("same target, two keys:\n%s\n%s", lease.TrafficKey(a), lease.TrafficKey(b))
	}
	other := activities.Target{Provider: "elbv2", Config: map[string]any{"region": "us-east-1", "listenerArn": "arn:other"}}
	if lease.TrafficKey(a) == lease.TrafficKey(other) {
		t.Fatal("two listeners, one key")
	}
	secret := activities.Target{Provider: "haproxy", Config: map[string]any{"url": "http://lb", "password": "hunter2", "apiToken": "t0k"}}
	if k := lease.TrafficKey(secret); k != `traffic:haproxy{"url":"http://lb"}` {
		t.Fatalf("key %s", k)
	}
	local := lease.TrafficKey(activities.Target{Provider: "local"})
	if local != lease.TrafficKey(activities.Target{Provider: "local", Config: map[string]any{"level": "version"}}) {
		t.Fatal("local default level is version")
	}
	long := activities.Target{Provider: "route53", Config: map[string]any{"x": string(make([]byte, 500))}}
	if id := lease.LockID(lease.TrafficKey(long)); len(id) > 100 {
		t.Fatalf("lock id of a long key: %d bytes", len(id))
	}
}
