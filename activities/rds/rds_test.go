package rds

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf/awstest"
)

func clusters(status, writer string) awstest.Handler {
	member := func(id string) string {
		return `<DBClusterMember><DBInstanceIdentifier>` + id + `</DBInstanceIdentifier><IsClusterWriter>` +
			map[bool]string{true: "true", false: "false"}[id == writer] + `</IsClusterWriter><PromotionTier>1</PromotionTier></DBClusterMember>`
	}
	return awstest.Fixed(awstest.XML(`<DescribeDBClustersResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">
  <DescribeDBClustersResult>
    <DBClusters>
      <DBCluster>
        <Engine>aurora-postgresql</Engine><Status>` + status + `</Status>
        <DBClusterIdentifier>orders</DBClusterIdentifier>
        <DBClusterArn>arn:aws:rds:us-east-1:123456789012:cluster:orders</DBClusterArn>
        <DBClusterMembers>` + member("orders-1") + member("orders-2") + `</DBClusterMembers>
      </DBCluster>
    </DBClusters>
  </DescribeDBClustersResult>
  <ResponseMetadata><RequestId>d4c0a3f2-1b2c-4c5d-8e9f-0a1b2c3d4e5f</RequestId></ResponseMetadata>
</DescribeDBClustersResponse>`))
}

func TestClusterFailover(t *testing.T) {
	srv := awstest.New(t, awstest.Query)
	srv.Handle("DescribeDBClusters", awstest.Sequence(
		clusters("available", "orders-1"), // Promote reads the members
		clusters("available", "orders-1"), // the waiter before the failover starts
		clusters("failing-over", "orders-1"),
		clusters("available", "orders-2")))
	srv.Handle("FailoverDBCluster", awstest.Fixed(awstest.XML(`<FailoverDBClusterResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">
  <FailoverDBClusterResult><DBCluster><DBClusterIdentifier>orders</DBClusterIdentifier><Status>available</Status></DBCluster></FailoverDBClusterResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></FailoverDBClusterResponse>`)))
	d, err := New(map[string]any{"region": "us-east-1", "endpoint": srv.URL, "pollInterval": "5ms", "maxWait": "5s",
		"mode": "cluster", "cluster": "orders", "nodes": map[string]any{"a": "orders-1", "b": "orders-2"}}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Promote(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	fo := srv.Requests("FailoverDBCluster")
	if len(fo) != 1 || fo[0].Form.Get("DBClusterIdentifier") != "orders" || fo[0].Form.Get("TargetDBInstanceIdentifier") != "orders-2" {
		t.Fatalf("FailoverDBCluster = %v", fo)
	}
	if n := len(srv.Requests("DescribeDBClusters")); n != 4 {
		t.Errorf("DescribeDBClusters calls = %d, want 4 (waited through failing-over)", n)
	}
	nodes, err := d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []activities.DBNode{{Name: "a", Role: "replica"}, {Name: "b", Role: "primary"}}
	if !reflect.DeepEqual(nodes, want) {
		t.Errorf("status = %+v", nodes)
	}
	// Promoting the writer is a no-op.
	if err := d.Promote(context.Background(), "b"); err != nil || len(srv.Requests("FailoverDBCluster")) != 1 {
		t.Errorf("second promote: %v, failovers %d", err, len(srv.Requests("FailoverDBCluster")))
	}
	if err := d.Fence(context.Background(), "a"); !activities.IsPermanent(err) || !strings.Contains(err.Error(), "not supported by rds") {
		t.Errorf("fence: %v", err)
	}
}

const (
	east = "arn:aws:rds:us-east-1:123456789012:cluster:orders-east"
	west = "arn:aws:rds:us-west-2:123456789012:cluster:orders-west"
)

func global(status, writer string) awstest.Handler {
	member := func(arn string) string {
		w := map[bool]string{true: "true", false: "false"}[arn == writer]
		return `<GlobalClusterMember><DBClusterArn>` + arn + `</DBClusterArn><IsWriter>` + w + `</IsWriter><SynchronizationStatus>connected</SynchronizationStatus></GlobalClusterMember>`
	}
	return awstest.Fixed(awstest.XML(`<DescribeGlobalClustersResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">
  <DescribeGlobalClustersResult>
    <GlobalClusters>
      <GlobalClusterMember>
        <GlobalClusterIdentifier>orders-global</GlobalClusterIdentifier>
        <GlobalClusterArn>arn:aws:rds::123456789012:global-cluster:orders-global</GlobalClusterArn>
        <Status>` + status + `</Status><Engine>aurora-postgresql</Engine>
        <GlobalClusterMembers>` + member(east) + member(west) + `</GlobalClusterMembers>
      </GlobalClusterMember>
    </GlobalClusters>
  </DescribeGlobalClustersResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</DescribeGlobalClustersResponse>`))
}

func TestGlobalFailover(t *testing.T) {
	for _, mode := range []string{ModeGlobalSwitchover, ModeGlobalFailover} {
		t.Run(mode, func(t *testing.T) {
			srv := awstest.New(t, awstest.Query)
			srv.Handle("DescribeGlobalClusters", awstest.Sequence(global("available", east), global("switching-over", east), global("available", west)))
			srv.Handle("DescribeDBClusters", clusters("available", "x"))
			op := map[string]string{ModeGlobalSwitchover: "SwitchoverGlobalCluster", ModeGlobalFailover: "FailoverGlobalCluster"}[mode]
			srv.Handle(op, awstest.Fixed(awstest.XML(`<`+op+`Response xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><`+op+`Result><GlobalCluster>
  <GlobalClusterIdentifier>orders-global</GlobalClusterIdentifier><Status>switching-over</Status></GlobalCluster></`+op+`Result>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></`+op+`Response>`)))
			d, err := New(map[string]any{"region": "us-east-1", "endpoint": srv.URL, "pollInterval": "5ms", "maxWait": "5s",
				"mode": mode, "globalCluster": "orders-global", "nodes": map[string]any{"east": east, "west": west}}, awstest.LoadOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Promote(context.Background(), "west"); err != nil {
				t.Fatal(err)
			}
			calls := srv.Requests(op)
			if len(calls) != 1 {
				t.Fatalf("%s calls = %d", op, len(calls))
			}
			f := calls[0].Form
			if f.Get("GlobalClusterIdentifier") != "orders-global" || f.Get("TargetDbClusterIdentifier") != west {
				t.Errorf("%s form = %v", op, f)
			}
			if mode == ModeGlobalFailover && f.Get("AllowDataLoss") != "true" {
				t.Errorf("AllowDataLoss = %q", f.Get("AllowDataLoss"))
			}
			if got := srv.Requests("DescribeDBClusters")[0].Form.Get("DBClusterIdentifier"); got != west {
				t.Errorf("waited on cluster %q", got)
			}
			if n := len(srv.Requests("DescribeGlobalClusters")); n != 3 {
				t.Errorf("DescribeGlobalClusters calls = %d, want 3", n)
			}
		})
	}
}

func TestReplicaPromoteAndDenied(t *testing.T) {
	srv := awstest.New(t, awstest.Query)
	inst := func(status, source string) awstest.Handler {
		src := ""
		if source != "" {
			src = `<ReadReplicaSourceDBInstanceIdentifier>` + source + `</ReadReplicaSourceDBInstanceIdentifier>`
		}
		return awstest.Fixed(awstest.XML(`<DescribeDBInstancesResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">
  <DescribeDBInstancesResult><DBInstances><DBInstance>
    <DBInstanceIdentifier>orders-replica</DBInstanceIdentifier><DBInstanceStatus>` + status + `</DBInstanceStatus><Engine>postgres</Engine>` + src + `
  </DBInstance></DBInstances></DescribeDBInstancesResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeDBInstancesResponse>`))
	}
	srv.Handle("DescribeDBInstances", awstest.Sequence(inst("available", "orders-primary"), inst("modifying", "orders-primary"), inst("available", "")))
	srv.Handle("PromoteReadReplica", awstest.Sequence(
		awstest.Fixed(srv.Error(403, "AccessDenied", "User is not authorized to perform: rds:PromoteReadReplica")),
		awstest.Fixed(awstest.XML(`<PromoteReadReplicaResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><PromoteReadReplicaResult><DBInstance>
  <DBInstanceIdentifier>orders-replica</DBInstanceIdentifier><DBInstanceStatus>modifying</DBInstanceStatus></DBInstance></PromoteReadReplicaResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></PromoteReadReplicaResponse>`))))
	d, err := New(map[string]any{"region": "us-east-1", "endpoint": srv.URL, "pollInterval": "5ms", "maxWait": "5s",
		"mode": "replica", "nodes": map[string]any{"primary": "orders-primary", "replica": "orders-replica"}}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Promote(context.Background(), "replica")
	if !activities.IsPermanent(err) || !strings.HasPrefix(err.Error(), "rds:PromoteReadReplica on db:orders-replica: AccessDenied: ") {
		t.Fatalf("denied: %v", err)
	}
	srv.Handle("DescribeDBInstances", awstest.Sequence(inst("available", "orders-primary"), inst("modifying", "orders-primary"), inst("available", "")))
	if err := d.Promote(context.Background(), "replica"); err != nil {
		t.Fatal(err)
	}
	if p := srv.Requests("PromoteReadReplica"); len(p) != 2 || p[1].Form.Get("DBInstanceIdentifier") != "orders-replica" {
		t.Errorf("PromoteReadReplica = %v", p)
	}
}

func TestPermissions(t *testing.T) {
	ps, err := Permissions(activities.CapDatabase, map[string]any{"region": "us-east-1", "mode": "global-failover",
		"globalCluster": "orders-global", "nodes": map[string]any{"east": east, "west": west}})
	if err != nil {
		t.Fatal(err)
	}
	want := []activities.Permission{
		{Actions: []string{"rds:FailoverGlobalCluster", "rds:DescribeGlobalClusters"}, Resources: []string{"arn:aws:rds::*:global-cluster:orders-global"}},
		{Actions: []string{"rds:FailoverGlobalCluster", "rds:DescribeDBClusters"}, Resources: []string{east, west}},
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("permissions = %+v", ps)
	}
}
