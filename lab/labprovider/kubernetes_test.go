package labprovider

import (
	"context"
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/lab"
)

// In a lab with Kubernetes, HTTPRoute web is the only source of the HAProxy
// weights: the lab provider's traffic refuses instead of fighting the data
// plane, and reading the weights still works.
func TestKubernetesLabRefusesHAProxyWeights(t *testing.T) {
	l := lab.Start(t, lab.Options{Parts: lab.PartKubernetes})
	c, err := New(map[string]any{"lab": l.StatePath()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = c.SetWeights(ctx, activities.Weights{"v1": 50, "v2": 50})
	if err == nil || !activities.IsPermanent(err) || !strings.Contains(err.Error(), "gateway-api") {
		t.Fatalf("SetWeights in a Kubernetes lab: %v, want a permanent refusal naming gateway-api", err)
	}
	w, err := c.Weights(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w["v1"] != 100 || w["v2"] != 0 || w["v3"] != 0 {
		t.Fatalf("weights %v, want the route's 100/0 on v1", w)
	}
}
