package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
)

// workloadPrefix starts the name of every workload table; the rest is the
// creation time in Unix ms (13 digits, so names sort by age) and a random
// suffix. A table per run keeps a retried activity (after a worker crash)
// from colliding with the rows of the attempt it replaces.
const workloadPrefix = "drillship_wl_"

// workloadKeep is how long workload tables stay for inspection; older ones
// are dropped when a new workload starts.
const workloadKeep = 24 * time.Hour

// WorkloadProgress is the workload's heartbeat.
type WorkloadProgress struct {
	Table          string `json:"table"`
	Primary        string `json:"primary"`
	Acked          int    `json:"acked"`
	Failures       int    `json:"failures"`
	Failing        bool   `json:"failing"`
	Repoints       int    `json:"repoints"`
	FirstFailureAt int64  `json:"firstFailureAt,omitempty"`
	RecoveredAt    int64  `json:"recoveredAt,omitempty"`
}

// Workload stands in for the application during a drill: it writes
// numbered rows every interval to the node that is primary, and when writes
// fail it re-reads the roles and repoints to the new primary once there is
// one (the application's failover). It returns when writes have failed and
// then succeeded without a break for holdFor, or when ctx ends, with the
// acknowledged writes missing on the primary (RPO, in rows) and the times
// of the first failure and of the recovery that held.
//
// If no primary takes writes when it starts (the fault came first), that
// counts as the first failure.
func (c *Client) Workload(ctx context.Context, interval, holdFor time.Duration, heartbeat func(details any)) (activities.WorkloadResult, error) {
	c, err := c.bind()
	if err != nil {
		return activities.WorkloadResult{}, err
	}
	if interval <= 0 {
		interval = 50 * time.Millisecond
	}
	if holdFor <= 0 {
		holdFor = 2 * time.Second
	}
	p := WorkloadProgress{Table: fmt.Sprintf("%s%013d_%04x", workloadPrefix, time.Now().UnixMilli(), rand.IntN(1<<16))}
	beat := func() {
		if heartbeat != nil {
			heartbeat(p)
		}
	}
	var firstFail time.Time
	w, err := c.startWriter(ctx, &p, interval, &firstFail, beat)
	if err != nil {
		return activities.WorkloadResult{}, err
	}
	if w == nil { // ctx ended before any primary took writes
		return c.workloadResult(ctx, nil, p, firstFail, time.Time{}, "ended before a primary took writes")
	}
	defer w.Stop()

	tick := time.NewTicker(min(interval, 100*time.Millisecond))
	defer tick.Stop()
	var lastCheck, lastBeat time.Time
	for {
		select {
		case <-ctx.Done():
			w.Stop()
			return c.workloadResult(ctx, w, p, firstFail, time.Time{}, "ended before writes held again")
		case <-tick.C:
		}
		st := w.Stats()
		failing := !st.FailedAt.IsZero() && st.RecoveredAt.IsZero()
		if firstFail.IsZero() && !st.FailedAt.IsZero() {
			firstFail = st.FailedAt
		}
		if failing && time.Since(lastCheck) >= 200*time.Millisecond {
			lastCheck = time.Now()
			if prim, _ := c.writablePrimary(ctx); prim != "" && prim != p.Primary {
				dsn, _ := c.dsn(prim)
				w.Repoint(dsn)
				c.log.Info("postgres workload: repointed to the new primary", "from", p.Primary, "to", prim)
				p.Primary = prim
				p.Repoints++
			}
		}
		// The recovery that counts is the start of the streak that held:
		// after a failure inside the writer, its RecoveredAt; after a start
		// without a primary, the first acknowledged write.
		recovered := st.RecoveredAt
		if recovered.IsZero() && st.FailedAt.IsZero() && !firstFail.IsZero() {
			recovered = st.FirstAckAt
		}
		p.Acked, p.Failures, p.Failing = st.Acked, st.Failures, failing
		p.FirstFailureAt, p.RecoveredAt = ms(firstFail), ms(recovered)
		if !firstFail.IsZero() && !failing && !recovered.IsZero() && time.Since(recovered) >= holdFor {
			w.Stop()
			return c.workloadResult(ctx, w, p, firstFail, recovered, "")
		}
		if time.Since(lastBeat) >= time.Second {
			lastBeat = time.Now()
			beat()
		}
	}
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// startWriter waits for a writable primary, creates the run's table on it
// and starts writing. Nil without error means ctx ended first.
func (c *Client) startWriter(ctx context.Context, p *WorkloadProgress, interval time.Duration, firstFail *time.Time, beat func()) (*Writer, error) {
	for {
		prim, detail := c.writablePrimary(ctx)
		if prim != "" {
			dsn, _ := c.dsn(prim)
			w, err := NewWriter(dsn, WriterOptions{Table: p.Table, Interval: interval, Timeout: time.Second, Logger: c.log})
			if err != nil {
				return nil, activities.Permanent(fmt.Errorf("postgres: workload: %w", err))
			}
			if err = w.Setup(ctx); err == nil {
				p.Primary = prim
				c.dropOldTables(ctx, prim)
				c.awaitTable(ctx, prim, p.Table, 5*time.Second)
				w.Start(ctx)
				c.log.Info("postgres workload: writing", "table", p.Table, "primary", prim, "interval", interval)
				return w, nil
			}
			detail = err.Error()
		}
		if firstFail.IsZero() {
			*firstFail = time.Now()
			p.FirstFailureAt = ms(*firstFail)
			c.log.Info("postgres workload: no primary takes writes at start", "detail", detail)
		}
		beat()
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// awaitTable waits (bounded) until every reachable replica has replayed the
// new table, so that a replica promoted soon after still takes the writes.
func (c *Client) awaitTable(ctx context.Context, primary, table string, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for _, n := range c.names() {
		if n == primary {
			continue
		}
		for {
			if ok, err := c.hasTable(ctx, n, table); ok || err != nil {
				break // a node that does not answer cannot be waited for
			}
			select {
			case <-ctx.Done():
				c.log.Warn("postgres workload: replica has not replayed the table yet", "node", n, "table", table)
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

func (c *Client) hasTable(ctx context.Context, node, table string) (bool, error) {
	conn, err := c.connect(ctx, node)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var ok bool
	err = conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok)
	return ok, err
}

// dropOldTables drops workload tables older than workloadKeep; best effort.
func (c *Client) dropOldTables(ctx context.Context, node string) {
	conn, err := c.connect(ctx, node)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE $1", workloadPrefix+"%")
	if err != nil {
		return
	}
	var old []string
	cutoff := time.Now().Add(-workloadKeep).UnixMilli()
	for rows.Next() {
		var name string
		if rows.Scan(&name) != nil {
			continue
		}
		stamp, _, _ := strings.Cut(strings.TrimPrefix(name, workloadPrefix), "_")
		if at, err := strconv.ParseInt(stamp, 10, 64); err == nil && at < cutoff && tableName.MatchString(name) {
			old = append(old, name)
		}
	}
	rows.Close()
	for _, t := range old {
		if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+t); err == nil {
			c.log.Info("postgres workload: dropped an old workload table", "table", t)
		}
	}
}

// workloadResult counts the acknowledged writes missing on the node that is
// primary now (the one the writer last wrote to if none answers). A count
// that cannot be made is a permanent error: running the workload again
// would measure another run, not this one.
func (c *Client) workloadResult(ctx context.Context, w *Writer, p WorkloadProgress, firstFail, recovered time.Time, note string) (activities.WorkloadResult, error) {
	r := activities.WorkloadResult{FirstFailureAt: ms(firstFail), RecoveredAt: ms(recovered)}
	if w == nil {
		r.Detail = note
		return r, nil
	}
	// Counting must finish even when the activity's context has ended.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	st := w.Stats()
	r.Acked = int64(st.Acked)
	prim, _ := c.writablePrimary(cctx)
	if prim == "" {
		prim = p.Primary
	}
	dsn, _ := c.dsn(prim)
	missing, err := w.CountMissing(cctx, dsn)
	parts := []string{fmt.Sprintf("table %s, counted on %s; %d writes failed; repointed %d times", p.Table, prim, st.Failures, p.Repoints)}
	if err != nil {
		return r, activities.Permanent(fmt.Errorf("postgres: workload: %s: RPO not counted: %w", parts[0], err))
	}
	r.Missing = int64(len(missing))
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("missing seqs %d..%d", missing[0], missing[len(missing)-1]))
	}
	if note != "" {
		parts = append(parts, note)
	}
	r.Detail = strings.Join(parts, "; ")
	return r, nil
}
