package kubernetes_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/kubernetes"
	"github.com/drillship/drillship/drills"
)

// `drill validate` refuses a fault kind the target's config.kinds leaves
// out, at its line and naming the kinds allowed, instead of passing a drill
// whose inject would be refused.
func TestFaultKindOutsideKindsRefusedAtValidate(t *testing.T) {
	b, err := os.ReadFile("../../drills/k8s-pod-kill.yaml")
	if err != nil {
		t.Fatal(err)
	}
	good := string(b)
	reg := activities.NewRegistry(kubernetes.Provider())
	if _, err := drills.Parse("k8s-pod-kill.yaml", b, reg); err != nil {
		t.Fatalf("the shipped spec: %v", err)
	}
	const step = `fault: {kind: pod_kill, params: {selector: "app=web,drillship.dev/role=stable", percent: "50"}}`
	if !strings.Contains(good, step) {
		t.Fatal("the shipped spec's inject step changed")
	}
	line := 1 + strings.Count(good[:strings.Index(good, step)], "\n")
	bad := strings.Replace(good, step, `fault: {kind: zone_down, params: {zone: zone-a}}`, 1)
	_, err = drills.Parse("k8s-pod-kill.yaml", []byte(bad), reg)
	want := `"zone_down" is not in config.kinds of this kubernetes target (allowed: pod_kill)`
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "k8s-pod-kill.yaml:"+strconv.Itoa(line)) {
		t.Fatalf("validate = %v; want line %d refused with %s", err, line, want)
	}
	t.Logf("validate: %v", err)
	// Widened to the kind, the same step passes.
	wide := strings.Replace(bad, "kinds: [pod_kill]", "kinds: [pod_kill, zone_down]", 1)
	if _, err := drills.Parse("k8s-pod-kill.yaml", []byte(wide), reg); err != nil {
		t.Fatalf("with zone_down in kinds: %v", err)
	}
}
