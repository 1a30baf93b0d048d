// Package postgres is the PostgreSQL provider: it reports the role and
// replication state of named nodes, promotes a streaming replica, fences an
// old primary, and rebuilds a node as a replica of the current primary. It
// also holds the RPO/RTO writer that drills run against the database.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/lab"
)

// Name is the provider name in specs.
const Name = "postgres"

// Config is the provider's settings.
//
//	nodes:                       # node name -> libpq/pgx DSN (a superuser: pg_promote, ALTER SYSTEM)
//	  pg1: postgres://postgres@db1:5432/postgres
//	  pg2: postgres://postgres@db2:5432/postgres
//	lab: default                 # optional: the drillship lab that runs the nodes: "default"
//	                             # ($DRILLSHIP_LAB_DIR, else ~/.drillship/lab) or the absolute
//	                             # path of a lab directory or state file, read when a call runs.
//	                             # Without nodes, the nodes are the lab's. Rebuild and the
//	                             # kill_node fault need it; Fence uses it to stop an unreachable node.
//	timeout: 5s                  # per connection and query, default 5s
type Config struct {
	Nodes   map[string]string `json:"nodes"`
	Lab     string            `json:"lab,omitempty"`
	Timeout string            `json:"timeout,omitempty"`
}

// Roles a node reports.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
	RoleDown    = "down"
	RoleFenced  = "fenced"
)

// Provider returns the postgres provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:     Name,
		Declare:  Declare,
		Database: func(cfg map[string]any) (activities.Database, error) { return New(cfg, nil) },
		Signals:  func(cfg map[string]any) (activities.Signals, error) { return New(cfg, nil) },
		Faults:   func(cfg map[string]any) (activities.Faults, error) { return New(cfg, nil) },
	}
}

// Client manages the configured nodes.
type Client struct {
	nodes   map[string]string
	lab     string
	timeout time.Duration
	log     *slog.Logger
}

// New validates the settings; it does no I/O.
func New(cfg map[string]any, logger *slog.Logger) (*Client, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	if c.Lab != "" {
		if err := lab.CheckRef(c.Lab); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	if len(c.Nodes) < 2 && (c.Lab == "" || len(c.Nodes) != 0) {
		return nil, errors.New("config: nodes needs at least two entries (node name -> DSN): a primary and a replica (or leave nodes out and set lab to use the lab's)")
	}
	for name, dsn := range c.Nodes {
		if _, err := pgx.ParseConfig(dsn); err != nil {
			return nil, fmt.Errorf("config: nodes.%s: not a PostgreSQL DSN: %w", name, err)
		}
	}
	timeout := 5 * time.Second
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("config: timeout %q: want a positive duration such as 5s", c.Timeout)
		}
		timeout = d
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Client{nodes: c.Nodes, lab: c.Lab, timeout: timeout, log: logger}, nil
}

// bind returns the client with its nodes: the configured ones, else the
// lab's, read now (the worker's view of the lab, not the CLI's).
func (c *Client) bind() (*Client, error) {
	if len(c.nodes) > 0 {
		return c, nil
	}
	st, err := c.labState()
	if err != nil {
		return nil, err
	}
	cc := *c
	cc.nodes = map[string]string{}
	for _, n := range st.Postgres.Nodes {
		cc.nodes[n.Name] = n.DSN
	}
	return &cc, nil
}

// labState reads the lab's state; a lab that is not there or runs no
// PostgreSQL is permanent: no retry starts one.
func (c *Client) labState() (*lab.State, error) {
	if c.lab == "" {
		return nil, activities.Permanent(errors.New("postgres: needs the lab setting (the drillship lab running the nodes)"))
	}
	st, err := lab.Resolve(c.lab)
	if errors.Is(err, lab.ErrNoLab) {
		return nil, activities.Permanent(fmt.Errorf("postgres: %w", err))
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if st.Postgres == nil {
		return nil, activities.Permanent(fmt.Errorf("postgres: the lab in %s runs no postgres", st.Dir))
	}
	return st, nil
}

func (c *Client) names() []string {
	out := make([]string, 0, len(c.nodes))
	for n := range c.nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (c *Client) dsn(node string) (string, error) {
	d, ok := c.nodes[node]
	if !ok {
		return "", activities.Permanent(fmt.Errorf("postgres: node %q is not in nodes (have: %s)", node, strings.Join(c.names(), ", ")))
	}
	return d, nil
}

func (c *Client) connect(ctx context.Context, node string) (*pgx.Conn, error) {
	dsn, err := c.dsn(node)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, activities.Permanent(fmt.Errorf("postgres: nodes.%s: %w", node, err))
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > c.timeout {
		cfg.ConnectTimeout = c.timeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect to %s: %w", node, err)
	}
	return conn, nil
}

// nodeState is what one node says about itself.
type nodeState struct {
	up        bool
	err       error
	recovery  bool
	readOnly  bool  // default_transaction_read_only: the fence
	receiving bool  // replica: WAL receiver streaming
	localLag  int64 // replica: received but not yet replayed, bytes
	lagSecs   float64
	standbys  map[string]standby // primary: pg_stat_replication by application_name
}

type standby struct {
	state   string
	lagByte int64
}

func (c *Client) inspect(ctx context.Context, node string) nodeState {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := c.connect(ctx, node)
	if err != nil {
		return nodeState{err: err}
	}
	defer conn.Close(context.Background())
	s := nodeState{up: true}
	if err := conn.QueryRow(ctx,
		`SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only') = 'on'`).Scan(&s.recovery, &s.readOnly); err != nil {
		return nodeState{err: fmt.Errorf("postgres: %s: %w", node, err)}
	}
	if s.recovery {
		err = conn.QueryRow(ctx, `SELECT
			coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver LIMIT 1), false),
			coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::bigint,
			CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
			     ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8`).
			Scan(&s.receiving, &s.localLag, &s.lagSecs)
		if err != nil {
			return nodeState{err: fmt.Errorf("postgres: %s: replication state: %w", node, err)}
		}
		return s
	}
	rows, err := conn.Query(ctx, `SELECT application_name, state,
		coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint FROM pg_stat_replication`)
	if err != nil {
		return nodeState{err: fmt.Errorf("postgres: %s: pg_stat_replication: %w", node, err)}
	}
	s.standbys = map[string]standby{}
	for rows.Next() {
		var name string
		var sb standby
		if err := rows.Scan(&name, &sb.state, &sb.lagByte); err != nil {
			rows.Close()
			return nodeState{err: fmt.Errorf("postgres: %s: pg_stat_replication: %w", node, err)}
		}
		s.standbys[name] = sb
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nodeState{err: fmt.Errorf("postgres: %s: pg_stat_replication: %w", node, err)}
	}
	return s
}

func (c *Client) inspectAll(ctx context.Context) map[string]nodeState {
	out := map[string]nodeState{}
	for _, n := range c.names() {
		out[n] = c.inspect(ctx, n)
	}
	return out
}

// Status reports every node, sorted by name. A node that cannot be reached
// is "down"; a primary refusing writes (fenced) is "fenced". A replica's lag
// in bytes is what its primary has written and it has not replayed (from
// pg_stat_replication, matched on application_name = node name), else what
// it has received and not replayed. A primary is Streaming when at least
// one standby streams from it.
func (c *Client) Status(ctx context.Context) ([]activities.DBNode, error) {
	c, err := c.bind()
	if err != nil {
		return nil, err
	}
	states := c.inspectAll(ctx)
	var primaries []nodeState
	for _, n := range c.names() {
		if s := states[n]; s.up && !s.recovery {
			primaries = append(primaries, s)
		}
	}
	var out []activities.DBNode
	for _, n := range c.names() {
		s := states[n]
		d := activities.DBNode{Name: n}
		switch {
		case !s.up:
			d.Role = RoleDown
			c.log.Debug("postgres: node down", "node", n, "err", s.err)
		case s.recovery:
			d.Role = RoleReplica
			d.Streaming = s.receiving
			d.LagBytes, d.LagSecs = s.localLag, s.lagSecs
			for _, p := range primaries {
				if sb, ok := p.standbys[n]; ok {
					d.LagBytes = sb.lagByte
				}
			}
		default:
			d.Role = RolePrimary
			if s.readOnly {
				d.Role = RoleFenced
			}
			for _, sb := range s.standbys {
				if sb.state == "streaming" {
					d.Streaming = true
				}
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// Promote makes node the primary: pg_promote on a replica, then it waits
// until node takes a write. On a node that is already primary it only lifts
// a fence, so promoting twice is harmless.
func (c *Client) Promote(ctx context.Context, node string) error {
	c, err := c.bind()
	if err != nil {
		return err
	}
	if _, err := c.dsn(node); err != nil {
		return err
	}
	s := c.inspect(ctx, node)
	if !s.up {
		return fmt.Errorf("postgres: promote %s: %w", node, s.err)
	}
	conn, err := c.connect(ctx, node)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if s.recovery {
		var ok bool
		// wait=true, 60s: returns once the node has left recovery.
		if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil {
			return fmt.Errorf("postgres: promote %s: %w", node, err)
		}
		if !ok {
			return fmt.Errorf("postgres: promote %s: pg_promote did not finish within 60s", node)
		}
		c.log.Info("postgres: promoted", "node", node)
	}
	if s.readOnly {
		if err := unfence(ctx, conn); err != nil {
			return fmt.Errorf("postgres: promote %s: lift fence: %w", node, err)
		}
	}
	return c.waitWritable(ctx, node)
}

// writable reports whether a fresh session on node can write: its
// transaction is not read-only and it can get a transaction id, which a
// node in recovery cannot.
func (c *Client) writable(ctx context.Context, node string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := c.connect(ctx, node)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	var ro string
	if err := tx.QueryRow(ctx, "SELECT current_setting('transaction_read_only'), pg_current_xact_id()::text").Scan(&ro, new(string)); err != nil {
		return err
	}
	if ro == "on" {
		return errors.New("transactions are read-only")
	}
	return tx.Commit(ctx)
}

func (c *Client) waitWritable(ctx context.Context, node string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		err := c.writable(ctx, node)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: %s does not accept writes: %w", node, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func unfence(ctx context.Context, conn *pgx.Conn) error {
	for _, q := range []string{
		"SET default_transaction_read_only = off",
		"ALTER SYSTEM RESET default_transaction_read_only",
		"SELECT pg_reload_conf()",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// Fence stops node from accepting writes.
//
// Reachable: it sets default_transaction_read_only=on with ALTER SYSTEM
// (persisted, so a restart keeps it) and reloads, then ends the sessions
// that opened before, so that every session is read-only. The node stays up
// for diagnosis and reads; Promote lifts the fence. (A client can still SET
// transaction_read_only off: this fences applications, not a superuser.)
//
// Unreachable: it cannot be told anything. With the lab setting the lab
// stops it for good, so it cannot come back as a second primary; without,
// Fence fails (retryably): a node that is only cut off from drillship may
// still take writes from clients that do reach it.
func (c *Client) Fence(ctx context.Context, node string) error {
	c, err := c.bind()
	if err != nil {
		return err
	}
	if _, err := c.dsn(node); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*c.timeout)
	defer cancel()
	conn, err := c.connect(ctx, node)
	if err != nil {
		if c.lab == "" {
			return fmt.Errorf("postgres: fence %s: cannot reach it to fence it (set lab to let drillship stop it, or stop it out of band): %w", node, err)
		}
		st, lerr := c.labState()
		if lerr != nil {
			return fmt.Errorf("postgres: fence %s: %w", node, lerr)
		}
		if err := st.Postgres.Stop(node); err != nil {
			return fmt.Errorf("postgres: fence %s: %w", node, err)
		}
		c.log.Info("postgres: fenced by stopping it (unreachable)", "node", node)
		return nil
	}
	defer conn.Close(context.Background())
	var on bool
	if err := conn.QueryRow(ctx, "SELECT current_setting('default_transaction_read_only') = 'on'").Scan(&on); err != nil {
		return fmt.Errorf("postgres: fence %s: %w", node, err)
	}
	if !on {
		for _, q := range []string{"ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("postgres: fence %s: %s: %w", node, q, err)
			}
		}
	}
	// The reload reaches backends asynchronously; wait until a new session
	// sees it, then cut the old ones so they reconnect read-only.
	for {
		s := c.inspect(ctx, node)
		if s.up && s.readOnly {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: fence %s: setting not in effect: %w", node, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	var cut int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`).Scan(&cut); err != nil {
		return fmt.Errorf("postgres: fence %s: end sessions: %w", node, err)
	}
	c.log.Info("postgres: fenced (read-only)", "node", node, "sessionsEnded", cut)
	return nil
}

// Rebuild makes node a streaming replica of the current primary. It needs
// the lab setting: re-creating a replica means stopping a server, replacing
// its data directory with pg_basebackup -R and starting it, which only what
// runs the servers can do. A node that already streams from the primary is
// left alone.
func (c *Client) Rebuild(ctx context.Context, node string) error {
	c, err := c.bind()
	if err != nil {
		return err
	}
	if _, err := c.dsn(node); err != nil {
		return err
	}
	if c.lab == "" {
		return activities.Permanent(fmt.Errorf("postgres: rebuild %s: needs the lab setting (the state file of the drillship lab running the nodes)", node))
	}
	states := c.inspectAll(ctx)
	var primary string
	for _, n := range c.names() {
		if s := states[n]; n != node && s.up && !s.recovery && !s.readOnly {
			if primary != "" {
				return fmt.Errorf("postgres: rebuild %s: two writable primaries (%s, %s); fence one first", node, primary, n)
			}
			primary = n
		}
	}
	if primary == "" {
		return fmt.Errorf("postgres: rebuild %s: no writable primary among the other nodes to copy from", node)
	}
	if s := states[node]; s.up && s.recovery && s.receiving && states[primary].standbys[node].state == "streaming" {
		c.log.Info("postgres: already streaming from the primary", "node", node, "primary", primary)
		return nil
	}
	st, err := c.labState()
	if err != nil {
		return fmt.Errorf("postgres: rebuild %s: %w", node, err)
	}
	if err := st.Postgres.Rebuild(ctx, node, primary); err != nil {
		return fmt.Errorf("postgres: rebuild %s from %s: %w", node, primary, err)
	}
	c.log.Info("postgres: rebuilt as a replica", "node", node, "primary", primary)
	return nil
}
