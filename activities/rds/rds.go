// Package rds is the Amazon RDS and Aurora provider for Database: Aurora
// cluster failover to a chosen instance, Aurora global database switchover
// (planned) or failover (unplanned, with data loss allowed), and promotion of
// an RDS read replica. RDS has no fencing or rebuilding of a node, so Fence
// and Rebuild fail permanently.
package rds

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Name is the provider name in specs.
const Name = "rds"

// Modes.
const (
	ModeCluster          = "cluster"           // Aurora FailoverDBCluster
	ModeGlobalSwitchover = "global-switchover" // Aurora global SwitchoverGlobalCluster
	ModeGlobalFailover   = "global-failover"   // Aurora global FailoverGlobalCluster, AllowDataLoss
	ModeReplica          = "replica"           // RDS PromoteReadReplica
)

// Config is the Database settings.
//
//	region: us-east-1
//	mode: cluster                 # cluster | global-switchover | global-failover | replica
//	cluster: orders               # mode cluster: the DB cluster identifier
//	globalCluster: orders-global  # global modes: the global cluster identifier
//	nodes:                        # drillship node -> identifier:
//	  a: orders-instance-1        #   cluster: DB instance id (optional; unmapped nodes are instance ids)
//	  east: arn:aws:rds:us-east-1:123456789012:cluster:orders-east  # global: member cluster ARN (required)
//	  # replica: DB instance ids, primary and replicas (required)
type Config struct {
	awsconf.Settings
	Mode          string            `json:"mode"`
	Cluster       string            `json:"cluster,omitempty"`
	GlobalCluster string            `json:"globalCluster,omitempty"`
	Nodes         map[string]string `json:"nodes,omitempty"`
}

// Provider returns the rds provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:        Name,
		Declare:     Declare,
		Database:    func(cfg map[string]any) (activities.Database, error) { return New(cfg) },
		Permissions: Permissions,
	}
}

// Database drives one cluster, global cluster or replica set.
type Database struct {
	conn *awsconf.Conn
	cfg  Config
	back map[string]string // identifier -> node
}

var (
	idRe         = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,62}$`)
	clusterARNRe = regexp.MustCompile(`^arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:cluster:[A-Za-z][A-Za-z0-9-]{0,62}$`)
)

// New validates the settings; it does no I/O.
func New(cfg map[string]any, opts ...func(*config.LoadOptions) error) (*Database, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	conn, err := awsconf.New(c.Settings, opts...)
	if err != nil {
		return nil, err
	}
	switch c.Mode {
	case ModeCluster:
		if !idRe.MatchString(c.Cluster) {
			return nil, fmt.Errorf("config: cluster %q: want the DB cluster identifier (mode %s)", c.Cluster, c.Mode)
		}
		if c.GlobalCluster != "" {
			return nil, fmt.Errorf("config: globalCluster is not used in mode %s", c.Mode)
		}
	case ModeGlobalSwitchover, ModeGlobalFailover:
		if !idRe.MatchString(c.GlobalCluster) {
			return nil, fmt.Errorf("config: globalCluster %q: want the global cluster identifier (mode %s)", c.GlobalCluster, c.Mode)
		}
		if c.Cluster != "" {
			return nil, fmt.Errorf("config: cluster is not used in mode %s; list member clusters under nodes", c.Mode)
		}
		if len(c.Nodes) < 2 {
			return nil, fmt.Errorf("config: nodes: want at least two member cluster ARNs (mode %s)", c.Mode)
		}
		for n, id := range c.Nodes {
			if !clusterARNRe.MatchString(id) {
				return nil, fmt.Errorf("config: nodes: %s: %q: want a DB cluster ARN (arn:aws:rds:<region>:<account>:cluster:<id>)", n, id)
			}
		}
	case ModeReplica:
		if c.Cluster != "" || c.GlobalCluster != "" {
			return nil, fmt.Errorf("config: mode %s uses nodes only", c.Mode)
		}
		if len(c.Nodes) < 2 {
			return nil, errors.New("config: nodes: want the primary and replica DB instance identifiers (mode replica)")
		}
	default:
		return nil, fmt.Errorf("config: mode %q: want one of %s, %s, %s, %s", c.Mode, ModeCluster, ModeGlobalSwitchover, ModeGlobalFailover, ModeReplica)
	}
	d := &Database{conn: conn, cfg: c, back: map[string]string{}}
	for n, id := range c.Nodes {
		if n == "" {
			return nil, errors.New("config: nodes: empty node name")
		}
		if c.Mode != ModeGlobalSwitchover && c.Mode != ModeGlobalFailover && !idRe.MatchString(id) {
			return nil, fmt.Errorf("config: nodes: %s: %q: want a DB instance identifier", n, id)
		}
		if other, dup := d.back[id]; dup {
			return nil, fmt.Errorf("config: nodes: %s and %s both name %s", other, n, id)
		}
		d.back[id] = n
	}
	return d, nil
}

func (d *Database) client(ctx context.Context) (*rds.Client, error) {
	cfg, err := d.conn.Config(ctx)
	if err != nil {
		return nil, err
	}
	return rds.NewFromConfig(cfg), nil
}

func (d *Database) id(node string) (string, error) {
	if id, ok := d.cfg.Nodes[node]; ok {
		return id, nil
	}
	if d.cfg.Mode == ModeCluster && idRe.MatchString(node) {
		return node, nil
	}
	names := make([]string, 0, len(d.cfg.Nodes))
	for n := range d.cfg.Nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	return "", activities.Permanent(fmt.Errorf("rds: node %q is not in nodes (%s)", node, strings.Join(names, ", ")))
}

func (d *Database) node(id string) string {
	if n, ok := d.back[id]; ok {
		return n
	}
	return id
}

// Status reads the roles of the nodes.
func (d *Database) Status(ctx context.Context) ([]activities.DBNode, error) {
	c, err := d.client(ctx)
	if err != nil {
		return nil, err
	}
	var out []activities.DBNode
	switch d.cfg.Mode {
	case ModeCluster:
		cl, err := d.describeCluster(ctx, c, d.cfg.Cluster)
		if err != nil {
			return nil, err
		}
		for _, m := range cl.DBClusterMembers {
			role := "replica"
			if aws.ToBool(m.IsClusterWriter) {
				role = "primary"
			}
			out = append(out, activities.DBNode{Name: d.node(aws.ToString(m.DBInstanceIdentifier)), Role: role})
		}
	case ModeGlobalSwitchover, ModeGlobalFailover:
		g, err := d.describeGlobal(ctx, c)
		if err != nil {
			return nil, err
		}
		for _, m := range g.GlobalClusterMembers {
			role := "replica"
			if aws.ToBool(m.IsWriter) {
				role = "primary"
			}
			out = append(out, activities.DBNode{Name: d.node(aws.ToString(m.DBClusterArn)), Role: role,
				Streaming: !aws.ToBool(m.IsWriter) && m.SynchronizationStatus == types.GlobalClusterMemberSynchronizationStatusConnected})
		}
	case ModeReplica:
		ids := make([]string, 0, len(d.cfg.Nodes))
		for _, id := range d.cfg.Nodes {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		resp, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{Filters: []types.Filter{{Name: aws.String("db-instance-id"), Values: ids}}})
		if err != nil {
			return nil, awsconf.Classify(err, "rds:DescribeDBInstances", "db:"+strings.Join(ids, ","))
		}
		for _, in := range resp.DBInstances {
			role := "primary"
			switch {
			case aws.ToString(in.DBInstanceStatus) == "stopped" || aws.ToString(in.DBInstanceStatus) == "failed":
				role = "down"
			case in.ReadReplicaSourceDBInstanceIdentifier != nil:
				role = "replica"
			}
			out = append(out, activities.DBNode{Name: d.node(aws.ToString(in.DBInstanceIdentifier)), Role: role,
				Streaming: role == "replica" && aws.ToString(in.DBInstanceStatus) == "available"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (d *Database) describeCluster(ctx context.Context, c *rds.Client, id string) (types.DBCluster, error) {
	resp, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(id)})
	if err != nil {
		return types.DBCluster{}, awsconf.Classify(err, "rds:DescribeDBClusters", "cluster:"+id)
	}
	if len(resp.DBClusters) != 1 {
		return types.DBCluster{}, activities.Permanent(fmt.Errorf("rds: cluster %s: not found", id))
	}
	return resp.DBClusters[0], nil
}

func (d *Database) describeGlobal(ctx context.Context, c *rds.Client) (types.GlobalCluster, error) {
	resp, err := c.DescribeGlobalClusters(ctx, &rds.DescribeGlobalClustersInput{GlobalClusterIdentifier: aws.String(d.cfg.GlobalCluster)})
	if err != nil {
		return types.GlobalCluster{}, awsconf.Classify(err, "rds:DescribeGlobalClusters", "global-cluster:"+d.cfg.GlobalCluster)
	}
	if len(resp.GlobalClusters) != 1 {
		return types.GlobalCluster{}, activities.Permanent(fmt.Errorf("rds: global cluster %s: not found", d.cfg.GlobalCluster))
	}
	return resp.GlobalClusters[0], nil
}

// Promote makes node the writer and waits until it is available as such.
func (d *Database) Promote(ctx context.Context, node string) error {
	id, err := d.id(node)
	if err != nil {
		return err
	}
	c, err := d.client(ctx)
	if err != nil {
		return err
	}
	switch d.cfg.Mode {
	case ModeCluster:
		return d.promoteInCluster(ctx, c, id)
	case ModeReplica:
		return d.promoteReplica(ctx, c, id)
	}
	return d.promoteGlobal(ctx, c, id)
}

func (d *Database) promoteInCluster(ctx context.Context, c *rds.Client, id string) error {
	cl, err := d.describeCluster(ctx, c, d.cfg.Cluster)
	if err != nil {
		return err
	}
	member := false
	for _, m := range cl.DBClusterMembers {
		if aws.ToString(m.DBInstanceIdentifier) == id {
			member = true
			if aws.ToBool(m.IsClusterWriter) {
				return nil // already the writer
			}
		}
	}
	if !member {
		return activities.Permanent(fmt.Errorf("rds: instance %s is not a member of cluster %s", id, d.cfg.Cluster))
	}
	if aws.ToString(cl.Status) == "available" {
		_, err = c.FailoverDBCluster(ctx, &rds.FailoverDBClusterInput{DBClusterIdentifier: aws.String(d.cfg.Cluster), TargetDBInstanceIdentifier: aws.String(id)})
		if err != nil {
			return awsconf.Classify(err, "rds:FailoverDBCluster", "cluster:"+d.cfg.Cluster)
		}
	}
	return d.waitCluster(ctx, c, d.cfg.Cluster, func(cl types.DBCluster) bool {
		for _, m := range cl.DBClusterMembers {
			if aws.ToString(m.DBInstanceIdentifier) == id {
				return aws.ToBool(m.IsClusterWriter)
			}
		}
		return false
	})
}

// waitCluster waits with the SDK's cluster-available waiter until the
// cluster is available and done(cluster) holds: right after a failover
// call the cluster may still read available with the old writer.
func (d *Database) waitCluster(ctx context.Context, c *rds.Client, id string, done func(types.DBCluster) bool) error {
	w := rds.NewDBClusterAvailableWaiter(c, func(o *rds.DBClusterAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = d.conn.Delays(o.MinDelay, o.MaxDelay)
		o.Retryable = func(_ context.Context, _ *rds.DescribeDBClustersInput, out *rds.DescribeDBClustersOutput, err error) (bool, error) {
			if err != nil {
				if awsconf.IsThrottle(err) {
					return true, nil
				}
				return false, err
			}
			if len(out.DBClusters) != 1 {
				return false, fmt.Errorf("cluster %s: not found", id)
			}
			cl := out.DBClusters[0]
			switch s := aws.ToString(cl.Status); s {
			case "available":
				return !done(cl), nil
			case "deleted", "deleting", "failed", "incompatible-restore", "incompatible-parameters":
				return false, fmt.Errorf("cluster %s: status %s", id, s)
			}
			return true, nil
		}
	})
	err := w.Wait(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(id)}, d.conn.MaxWait)
	return awsconf.Classify(err, "rds:DescribeDBClusters", "cluster:"+id)
}

func (d *Database) promoteGlobal(ctx context.Context, c *rds.Client, arn string) error {
	g, err := d.describeGlobal(ctx, c)
	if err != nil {
		return err
	}
	member := false
	for _, m := range g.GlobalClusterMembers {
		if aws.ToString(m.DBClusterArn) == arn {
			member = true
			if aws.ToBool(m.IsWriter) && aws.ToString(g.Status) == "available" {
				return nil
			}
		}
	}
	if !member {
		return activities.Permanent(fmt.Errorf("rds: cluster %s is not a member of global cluster %s", arn, d.cfg.GlobalCluster))
	}
	if aws.ToString(g.Status) == "available" {
		res := "global-cluster:" + d.cfg.GlobalCluster
		if d.cfg.Mode == ModeGlobalSwitchover {
			_, err = c.SwitchoverGlobalCluster(ctx, &rds.SwitchoverGlobalClusterInput{GlobalClusterIdentifier: aws.String(d.cfg.GlobalCluster), TargetDbClusterIdentifier: aws.String(arn)})
			err = awsconf.Classify(err, "rds:SwitchoverGlobalCluster", res)
		} else {
			_, err = c.FailoverGlobalCluster(ctx, &rds.FailoverGlobalClusterInput{GlobalClusterIdentifier: aws.String(d.cfg.GlobalCluster),
				TargetDbClusterIdentifier: aws.String(arn), AllowDataLoss: aws.Bool(true)})
			err = awsconf.Classify(err, "rds:FailoverGlobalCluster", res)
		}
		if err != nil {
			return err
		}
	}
	// The SDK has no waiter for global clusters: wait for the target
	// cluster with the cluster waiter, then poll the global cluster until
	// it is available with the target as writer.
	if err := d.waitCluster(ctx, c, arn, func(types.DBCluster) bool { return true }); err != nil {
		return err
	}
	deadline := time.Now().Add(d.conn.MaxWait)
	poll, _ := d.conn.Delays(30*time.Second, 0)
	for {
		g, err := d.describeGlobal(ctx, c)
		if err != nil {
			return err
		}
		if aws.ToString(g.Status) == "available" {
			for _, m := range g.GlobalClusterMembers {
				if aws.ToString(m.DBClusterArn) == arn && aws.ToBool(m.IsWriter) {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rds: global cluster %s: %s not the available writer after %s (status %s)", d.cfg.GlobalCluster, arn, d.conn.MaxWait, aws.ToString(g.Status))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

func (d *Database) promoteReplica(ctx context.Context, c *rds.Client, id string) error {
	resp, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	if err != nil {
		return awsconf.Classify(err, "rds:DescribeDBInstances", "db:"+id)
	}
	if len(resp.DBInstances) != 1 {
		return activities.Permanent(fmt.Errorf("rds: instance %s: not found", id))
	}
	in := resp.DBInstances[0]
	if in.ReadReplicaSourceDBInstanceIdentifier != nil && aws.ToString(in.DBInstanceStatus) == "available" {
		if _, err := c.PromoteReadReplica(ctx, &rds.PromoteReadReplicaInput{DBInstanceIdentifier: aws.String(id)}); err != nil {
			return awsconf.Classify(err, "rds:PromoteReadReplica", "db:"+id)
		}
	}
	w := rds.NewDBInstanceAvailableWaiter(c, func(o *rds.DBInstanceAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = d.conn.Delays(o.MinDelay, o.MaxDelay)
		o.Retryable = func(_ context.Context, _ *rds.DescribeDBInstancesInput, out *rds.DescribeDBInstancesOutput, err error) (bool, error) {
			if err != nil {
				if awsconf.IsThrottle(err) {
					return true, nil
				}
				return false, err
			}
			if len(out.DBInstances) != 1 {
				return false, fmt.Errorf("instance %s: not found", id)
			}
			in := out.DBInstances[0]
			switch s := aws.ToString(in.DBInstanceStatus); s {
			case "available":
				// Promotion is done once the instance no longer names a source.
				return in.ReadReplicaSourceDBInstanceIdentifier != nil, nil
			case "deleted", "deleting", "failed", "incompatible-restore", "incompatible-parameters":
				return false, fmt.Errorf("instance %s: status %s", id, s)
			}
			return true, nil
		}
	})
	err = w.Wait(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)}, d.conn.MaxWait)
	return awsconf.Classify(err, "rds:DescribeDBInstances", "db:"+id)
}

// Fence is not something RDS offers.
func (d *Database) Fence(ctx context.Context, node string) error {
	return activities.Permanent(fmt.Errorf("rds: fence %s: not supported by rds (RDS and Aurora have no fencing; the failover APIs demote the old writer themselves)", node))
}

// Rebuild is not something RDS offers.
func (d *Database) Rebuild(ctx context.Context, node string) error {
	return activities.Permanent(fmt.Errorf("rds: rebuild %s: not supported by rds (create a new read replica or cluster member instead)", node))
}

// Permissions lists what Database needs with cfg.
func Permissions(capability string, cfg map[string]any) ([]activities.Permission, error) {
	if capability != activities.CapDatabase {
		return nil, fmt.Errorf("rds: no %s capability", capability)
	}
	d, err := New(cfg)
	if err != nil {
		return nil, err
	}
	switch d.cfg.Mode {
	case ModeCluster:
		return []activities.Permission{{Actions: []string{"rds:DescribeDBClusters", "rds:FailoverDBCluster"},
			Resources: []string{d.conn.ARN("rds", "cluster:"+d.cfg.Cluster)}}}, nil
	case ModeReplica:
		var dbs []string
		for _, id := range d.cfg.Nodes {
			dbs = append(dbs, d.conn.ARN("rds", "db:"+id))
		}
		sort.Strings(dbs)
		return []activities.Permission{{Actions: []string{"rds:DescribeDBInstances", "rds:PromoteReadReplica"}, Resources: dbs}}, nil
	}
	var members []string
	for _, arn := range d.cfg.Nodes {
		members = append(members, arn)
	}
	sort.Strings(members)
	// Global cluster ARNs carry no region.
	global := "arn:" + d.conn.Partition() + ":rds::" + d.conn.Account() + ":global-cluster:" + d.cfg.GlobalCluster
	action := "rds:SwitchoverGlobalCluster"
	if d.cfg.Mode == ModeGlobalFailover {
		action = "rds:FailoverGlobalCluster"
	}
	return []activities.Permission{
		{Actions: []string{action, "rds:DescribeGlobalClusters"}, Resources: []string{global}},
		// Switchover and failover also authorize against the member clusters.
		{Actions: []string{action, "rds:DescribeDBClusters"}, Resources: members},
	}, nil
}
