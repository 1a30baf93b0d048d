package arc

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf/awstest"
)

const (
	cluster = "arn:aws:route53-recovery-control::123456789012:cluster/8d1f2b3c-aaaa"
	east    = "arn:aws:route53-recovery-control::123456789012:controlpanel/cp1/routingcontrol/rc-east"
	west    = "arn:aws:route53-recovery-control::123456789012:controlpanel/cp1/routingcontrol/rc-west"
)

func TestEvacuateFailsOverBetweenClusterEndpoints(t *testing.T) {
	down := awstest.New(t, awstest.JSON10)
	down.Handle("GetRoutingControlState", awstest.Fixed(down.Error(500, "InternalServerException", "endpoint unavailable")))
	states := map[string]string{east: "On", west: "On"}
	up := awstest.NewARC(t, states)
	tr, err := New(map[string]any{"region": "us-west-2", "clusterArn": cluster,
		"clusterEndpoints": []any{map[string]any{"endpoint": down.URL, "region": "us-east-1"}, map[string]any{"endpoint": up.URL, "region": "us-west-2"}},
		"routingControls":  map[string]any{"east": east, "west": west}}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	w, err := tr.Weights(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w, activities.Weights{"east": 50, "west": 50}) {
		t.Errorf("weights = %v", w)
	}
	if err := tr.SetWeights(context.Background(), activities.Weights{"east": 0, "west": 100}); err != nil {
		t.Fatal(err)
	}
	upd := up.Requests("UpdateRoutingControlStates")
	if len(upd) != 1 {
		t.Fatalf("UpdateRoutingControlStates calls = %d", len(upd))
	}
	want := []any{map[string]any{"RoutingControlArn": east, "RoutingControlState": "Off"}}
	if got := upd[0].Doc["UpdateRoutingControlStateEntries"]; !reflect.DeepEqual(got, want) {
		t.Errorf("entries = %v, want only east Off", got)
	}
	if got := upd[0].Header.Get("X-Amz-Target"); got != "ToggleCustomerAPI.UpdateRoutingControlStates" {
		t.Errorf("target = %q", got)
	}
	if len(down.Requests("")) == 0 {
		t.Error("the first endpoint was never tried")
	}
	w, _ = tr.Weights(context.Background())
	if !reflect.DeepEqual(w, activities.Weights{"east": 0, "west": 100}) {
		t.Errorf("weights after = %v", w)
	}
	// Same again: nothing to change.
	if err := tr.SetWeights(context.Background(), activities.Weights{"east": 0, "west": 100}); err != nil || len(up.Requests("UpdateRoutingControlStates")) != 1 {
		t.Errorf("idempotent set: %v", err)
	}
}

func TestDiscoversEndpointsAndDenied(t *testing.T) {
	states := map[string]string{east: "On", west: "Off"}
	data := awstest.NewARC(t, states)
	data.Handle("UpdateRoutingControlStates", awstest.Fixed(data.Error(400, "AccessDeniedException", "not authorized")))
	ctl := awstest.New(t, awstest.RestJSON)
	ctl.Handle("GET /cluster/{arn...}", awstest.Fixed(ctl.JSON(map[string]any{"Cluster": map[string]any{
		"ClusterArn": cluster, "Name": "drills", "Status": "DEPLOYED",
		"ClusterEndpoints": []any{map[string]any{"Endpoint": data.URL, "Region": "us-east-1"}},
	}})))
	tr, err := New(map[string]any{"region": "us-west-2", "endpoint": ctl.URL, "clusterArn": cluster,
		"routingControls": map[string]any{"east": east, "west": west}}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	err = tr.SetWeights(context.Background(), activities.Weights{"west": 100})
	if !activities.IsPermanent(err) || !strings.HasPrefix(err.Error(), "route53-recovery-cluster:UpdateRoutingControlStates on "+cluster+": AccessDeniedException") {
		t.Errorf("err = %v", err)
	}
	if got := ctl.Requests("")[0].Vars["arn"]; got != cluster {
		t.Errorf("DescribeCluster arn = %q", got)
	}
}

func TestPermissions(t *testing.T) {
	ps, err := Permissions(activities.CapTraffic, map[string]any{"region": "us-west-2", "clusterArn": cluster,
		"routingControls": map[string]any{"east": east, "west": west}})
	if err != nil {
		t.Fatal(err)
	}
	want := []activities.Permission{
		{Actions: []string{"route53-recovery-cluster:GetRoutingControlState"}, Resources: []string{east, west}},
		{Actions: []string{"route53-recovery-cluster:UpdateRoutingControlStates"}, Resources: []string{east, west}},
		{Actions: []string{"route53-recovery-control-config:DescribeCluster"}, Resources: []string{cluster}},
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("permissions = %+v", ps)
	}
}
