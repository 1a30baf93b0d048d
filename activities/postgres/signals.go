package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
)

// Metrics the postgres signals answer, besides the portable "up".
const (
	MetricReplicasStreaming = "replicas_streaming" // standbys streaming from the writable primary
	MetricLagBytes          = "lag_bytes"          // largest replica lag behind the primary, bytes
)

// Sample answers checks by role, not by node name, so that a drill's steady
// state holds whichever node is primary after a failover:
//
//	up {role: primary}   1 when exactly one node is primary and commits a
//	                     write (a transaction with an xid); 0 otherwise
//	up {role: replica}   1 when a replica streams from that primary
//	up {node: pg1}       1 when the node answers a query
//	replicas_streaming   how many standbys stream from the writable primary
//	lag_bytes            the largest replica lag behind it, bytes
//
// At is when the answer came back.
func (c *Client) Sample(ctx context.Context, q activities.Query) (activities.Sample, error) {
	c, err := c.bind()
	if err != nil {
		return activities.Sample{}, err
	}
	role, node := q.Scope["role"], q.Scope["node"]
	for k := range q.Scope {
		if k != "role" && k != "node" {
			return activities.Sample{}, activities.Permanent(fmt.Errorf("postgres: scope.%s: unknown (allowed: role, node)", k))
		}
	}
	if q.Expr != "" {
		return activities.Sample{}, activities.Permanent(errors.New("postgres: expr is not supported; use metric up, replicas_streaming or lag_bytes"))
	}
	switch q.Metric {
	case activities.MetricUp:
		switch {
		case node != "" && role == "":
			if _, err := c.dsn(node); err != nil {
				return activities.Sample{}, err
			}
			s := c.inspect(ctx, node)
			if !s.up {
				return sample(0, fmt.Sprintf("%s: %v", node, s.err)), nil
			}
			return sample(1, node+" answers"), nil
		case node == "" && role == RolePrimary:
			p, detail := c.writablePrimary(ctx)
			if p == "" {
				return sample(0, detail), nil
			}
			return sample(1, detail), nil
		case node == "" && role == RoleReplica:
			n, detail := c.streaming(ctx)
			return sample(boolVal(n > 0), detail), nil
		}
		return activities.Sample{}, activities.Permanent(errors.New("postgres: metric up needs scope role (primary or replica) or node"))
	case MetricReplicasStreaming:
		n, detail := c.streaming(ctx)
		return sample(float64(n), detail), nil
	case MetricLagBytes:
		nodes, err := c.Status(ctx)
		if err != nil {
			return activities.Sample{}, err
		}
		var lag int64
		var parts []string
		for _, n := range nodes {
			if n.Role == RoleReplica {
				lag = max(lag, n.LagBytes)
				parts = append(parts, fmt.Sprintf("%s %dB", n.Name, n.LagBytes))
			}
		}
		if len(parts) == 0 {
			return activities.Sample{NoData: true, At: time.Now().UnixMilli(), Detail: "no replica"}, nil
		}
		return sample(float64(lag), strings.Join(parts, ", ")), nil
	}
	return activities.Sample{}, activities.Permanent(fmt.Errorf("postgres: metric %q: allowed are up, %s, %s", q.Metric, MetricReplicasStreaming, MetricLagBytes))
}

func sample(v float64, detail string) activities.Sample {
	return activities.Sample{Value: v, At: time.Now().UnixMilli(), Detail: detail}
}

func boolVal(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writablePrimary returns the one node that is primary, not fenced, and
// commits a write; "" with the reason when there is none (or two).
func (c *Client) writablePrimary(ctx context.Context) (string, string) {
	nodes, err := c.Status(ctx)
	if err != nil {
		return "", err.Error()
	}
	var prim []string
	for _, n := range nodes {
		if n.Role == RolePrimary {
			prim = append(prim, n.Name)
		}
	}
	switch len(prim) {
	case 0:
		return "", "no primary: " + describeNodes(nodes)
	case 1:
	default:
		return "", "more than one primary (split brain): " + strings.Join(prim, ", ")
	}
	if err := c.writable(ctx, prim[0]); err != nil {
		return "", fmt.Sprintf("primary %s does not commit: %v", prim[0], err)
	}
	return prim[0], "primary " + prim[0] + " commits writes"
}

// streaming counts the standbys streaming from the writable primary.
func (c *Client) streaming(ctx context.Context) (int, string) {
	p, detail := c.writablePrimary(ctx)
	if p == "" {
		return 0, detail
	}
	s := c.inspect(ctx, p)
	var names []string
	for name, sb := range s.standbys {
		if sb.state == "streaming" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return 0, "no standby streams from " + p
	}
	return len(names), fmt.Sprintf("streaming from %s: %s", p, strings.Join(sorted(names), ", "))
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

func describeNodes(nodes []activities.DBNode) string {
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = n.Name + " " + n.Role
	}
	return strings.Join(parts, ", ")
}

// FaultKillNode crashes a lab node (SIGKILL to the postmaster and all its
// backends). Params: node (required); awaitWrites (a duration, optional):
// wait up to that long for a drill workload's committed rows (20) on the
// node first, so that the fault lands on a database under write load.
const FaultKillNode = "kill_node"

// Inject puts the fault in effect. Only kill_node exists; it needs the lab
// setting. The handle is the node's name.
func (c *Client) Inject(ctx context.Context, f activities.Fault) (string, error) {
	if f.Kind != FaultKillNode {
		return "", activities.Permanent(fmt.Errorf("postgres: fault kind %q: allowed is %s", f.Kind, FaultKillNode))
	}
	node := f.Params["node"]
	for k := range f.Params {
		if k != "node" && k != "awaitWrites" {
			return "", activities.Permanent(fmt.Errorf("postgres: %s: params.%s: unknown (allowed: node, awaitWrites)", FaultKillNode, k))
		}
	}
	c, err := c.bind()
	if err != nil {
		return "", err
	}
	if _, err := c.dsn(node); err != nil {
		return "", err
	}
	st, err := c.labState()
	if err != nil {
		return "", err
	}
	if v := f.Params["awaitWrites"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return "", activities.Permanent(fmt.Errorf("postgres: %s: params.awaitWrites %q: want a positive duration such as 10s", FaultKillNode, v))
		}
		if err := c.awaitWorkload(ctx, node, d); err != nil {
			c.log.Warn("postgres: no workload writes seen before the kill; killing anyway", "node", node, "err", err)
		}
	}
	at, err := st.Postgres.Kill(node)
	if err != nil {
		return "", fmt.Errorf("postgres: %s %s: %w", FaultKillNode, node, err)
	}
	c.log.Info("postgres: node killed", "node", node, "at", at, "owner", f.Owner)
	return node, nil
}

// Stop does nothing: a crash is not undone by starting the old primary
// again, which would come back as a second primary. The drill's restore
// steps rebuild the node as a replica instead. Since it never removes or
// starts anything, it cannot touch what someone else did, and a kill leaves
// nothing that could carry an owner label (no process, no record): ownership
// has nothing to mark here. With a handle the kill happened and is over
// (Stopped); without one it never happened as far as drillship knows
// (NotFound).
func (c *Client) Stop(ctx context.Context, f activities.Fault, handle string) (activities.StopResult, error) {
	if handle == "" {
		return activities.StopResult{NotFound: true}, nil
	}
	return activities.StopResult{Stopped: []string{handle}}, nil
}

// awaitRows is how many committed workload rows awaitWrites waits for.
const awaitRows = 20

// awaitWorkload waits until the newest workload table on node has
// awaitRows committed rows.
func (c *Client) awaitWorkload(ctx context.Context, node string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		ok, err := c.workloadWriting(ctx, node)
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Client) workloadWriting(ctx context.Context, node string) (bool, error) {
	conn, err := c.connect(ctx, node)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var table string
	err = conn.QueryRow(ctx, `SELECT coalesce(max(relname), '') FROM pg_class
		WHERE relkind = 'r' AND relname LIKE $1`, workloadPrefix+"%").Scan(&table)
	if err != nil || table == "" {
		return false, err
	}
	var n int
	err = conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s LIMIT %d) r", table, awaitRows)).Scan(&n)
	return n >= awaitRows, err
}
