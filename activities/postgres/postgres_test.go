package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/lab"
)

func status(t *testing.T, c *Client) map[string]activities.DBNode {
	t.Helper()
	nodes, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]activities.DBNode{}
	for _, n := range nodes {
		out[n.Name] = n
	}
	return out
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func query[T any](t *testing.T, dsn, q string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v T
	if err := conn.QueryRow(ctx, q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func exec(t *testing.T, dsn string, qs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range qs {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// failover runs the drill: writer on pg1, kill pg1, fence it, promote pg2,
// repoint the writer, count what was lost, rebuild pg1 from pg2.
func failover(t *testing.T, sync bool) {
	l := lab.Start(t, lab.Options{Parts: lab.PartPostgres, SyncReplication: sync})
	pg1, err := l.Postgres.Node(lab.PGPrimary)
	if err != nil {
		t.Fatal(err)
	}
	pg2, _ := l.Postgres.Node(lab.PGReplica)
	c, err := New(l.Settings()["postgres"], nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	st := status(t, c)
	if st["pg1"].Role != RolePrimary || !st["pg1"].Streaming || st["pg2"].Role != RoleReplica || !st["pg2"].Streaming {
		t.Fatalf("initial status %+v: want pg1 primary with a streaming standby, pg2 streaming replica", st)
	}
	wantSync := "async"
	if sync {
		wantSync = "sync"
	}
	if got := query[string](t, pg1.DSN, "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pg2'"); got != wantSync {
		t.Fatalf("pg2 sync_state %q, want %q", got, wantSync)
	}

	w, err := NewWriter(pg1.DSN, WriterOptions{Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	w.Start(ctx)
	t.Cleanup(w.Stop)
	waitFor(t, "50 acknowledged writes", 20*time.Second, func() bool { return w.Stats().Acked >= 50 })

	// Asynchronous: cut the replica off from the primary (a lagging standby)
	// and note the last row it has: every row acknowledged after that is
	// lost when the primary dies. This is the test's own count.
	var replicaHas int64
	if !sync {
		exec(t, pg2.DSN, "ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()")
		waitFor(t, "pg2's WAL receiver to stop", 10*time.Second, func() bool {
			return query[int64](t, pg2.DSN, "SELECT count(*) FROM pg_stat_wal_receiver") == 0
		})
		waitFor(t, "pg2 to replay what it received", 10*time.Second, func() bool {
			return query[bool](t, pg2.DSN, "SELECT pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()")
		})
		replicaHas = query[int64](t, pg2.DSN, "SELECT coalesce(max(seq), 0) FROM drillship_rpo")
		from := w.Stats().Acked
		waitFor(t, "30 more writes on pg1 alone", 20*time.Second, func() bool { return w.Stats().Acked >= from+30 })
	}

	killedAt, err := l.KillNode("pg1")
	if err != nil {
		t.Fatal(err)
	}
	ackedBeforeKill := w.Acked()
	highestBeforeKill := ackedBeforeKill[len(ackedBeforeKill)-1]
	waitFor(t, "the writer to see the failure", 10*time.Second, func() bool { return !w.Stats().FailedAt.IsZero() })

	if st := status(t, c); st["pg1"].Role != RoleDown || st["pg2"].Role != RoleReplica {
		t.Fatalf("after kill: %+v, want pg1 down, pg2 replica", st)
	}
	if err := c.Fence(ctx, "pg1"); err != nil {
		t.Fatalf("fence the dead primary: %v", err)
	}
	if err := c.Promote(ctx, "pg2"); err != nil {
		t.Fatal(err)
	}
	if st := status(t, c); st["pg2"].Role != RolePrimary {
		t.Fatalf("after promote: %+v, want pg2 primary", st)
	}
	if err := c.Promote(ctx, "pg2"); err != nil {
		t.Fatalf("promote twice: %v", err)
	}
	w.Repoint(pg2.DSN)
	waitFor(t, "writes on pg2", 20*time.Second, func() bool {
		s := w.Stats()
		return !s.RecoveredAt.IsZero() && s.Highest > highestBeforeKill+20
	})
	stats := w.Stats()
	rto := stats.RecoveredAt.Sub(killedAt)
	if rto <= 0 || rto > 30*time.Second {
		t.Fatalf("RTO %s (killed %s, recovered %s), want 0 < RTO < 30s", rto, killedAt, stats.RecoveredAt)
	}
	if got := query[int64](t, pg2.DSN, "SELECT max(seq) FROM drillship_rpo"); got < stats.Highest {
		t.Fatalf("pg2 max(seq) %d below the writer's acknowledged %d", got, stats.Highest)
	}

	missing, err := w.CountMissing(ctx, pg2.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if sync {
		if len(missing) != 0 {
			t.Fatalf("synchronous replication lost %d acknowledged writes: %v", len(missing), missing)
		}
	} else {
		var want []int64
		for _, s := range ackedBeforeKill {
			if s > replicaHas {
				want = append(want, s)
			}
		}
		if len(want) < 30 || len(missing) != len(want) || missing[0] != want[0] || missing[len(missing)-1] != want[len(want)-1] {
			t.Fatalf("missing %d seqs (%v...), the test counts %d (acked after seq %d before the kill)", len(missing), head(missing), len(want), replicaHas)
		}
	}
	t.Logf("sync=%v: RTO %s, acknowledged %d, missing %d, writer failures %d", sync, rto.Round(time.Millisecond), stats.Acked, len(missing), stats.Failures)

	// The old primary comes back as a replica of the new one.
	if err := c.Rebuild(ctx, "pg1"); err != nil {
		t.Fatal(err)
	}
	st = status(t, c)
	if st["pg1"].Role != RoleReplica || !st["pg1"].Streaming || st["pg2"].Role != RolePrimary || !st["pg2"].Streaming {
		t.Fatalf("after rebuild: %+v, want pg1 streaming replica of pg2", st)
	}
	if got := query[string](t, pg2.DSN, "SELECT state FROM pg_stat_replication WHERE application_name = 'pg1'"); got != "streaming" {
		t.Fatalf("pg2 sees pg1 %q, want streaming", got)
	}
	target := w.Stats().Highest
	waitFor(t, "pg1 to replay the writer's rows", 10*time.Second, func() bool {
		return query[int64](t, pg1.DSN, "SELECT coalesce(max(seq), 0) FROM drillship_rpo") >= target
	})
	if err := c.Rebuild(ctx, "pg1"); err != nil {
		t.Fatalf("rebuild of a streaming replica: %v", err)
	}
	if st := status(t, c); st["pg1"].Role != RoleReplica || !st["pg1"].Streaming {
		t.Fatalf("after a second rebuild: %+v, want pg1 still streaming", st)
	}
}

func head(s []int64) []int64 {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

func TestFailoverSynchronousLosesNothing(t *testing.T) { failover(t, true) }

func TestFailoverAsynchronousLosesTheLag(t *testing.T) { failover(t, false) }

func TestFenceLivePrimary(t *testing.T) {
	l := lab.Start(t, lab.Options{Parts: lab.PartPostgres})
	pg1, _ := l.Postgres.Node(lab.PGPrimary)
	pg2, _ := l.Postgres.Node(lab.PGReplica)
	c, err := New(map[string]any{"nodes": map[string]any{"pg1": pg1.DSN, "pg2": pg2.DSN}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	exec(t, pg1.DSN, "CREATE TABLE t (x int)")

	// A session open before the fence is ended by it.
	old, err := pgx.Connect(ctx, pg1.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(ctx)
	if err := c.Fence(ctx, "pg1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Fence(ctx, "pg1"); err != nil {
		t.Fatalf("fence twice: %v", err)
	}
	if _, err := old.Exec(ctx, "INSERT INTO t VALUES (1)"); err == nil {
		t.Fatal("a session from before the fence still writes")
	}
	conn, err := pgx.Connect(ctx, pg1.DSN)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "INSERT INTO t VALUES (1)")
	conn.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "read-only transaction") {
		t.Fatalf("write on the fenced node: %v, want read-only error", err)
	}
	if st := status(t, c); st["pg1"].Role != RoleFenced || st["pg2"].Role != RoleReplica {
		t.Fatalf("status %+v, want pg1 fenced", st)
	}
	// Promote on the (fenced) primary lifts the fence.
	if err := c.Promote(ctx, "pg1"); err != nil {
		t.Fatal(err)
	}
	exec(t, pg1.DSN, "INSERT INTO t VALUES (2)")
	if st := status(t, c); st["pg1"].Role != RolePrimary {
		t.Fatalf("status %+v, want pg1 primary again", st)
	}

	// Without the lab setting, Rebuild cannot work and says why.
	if err := c.Rebuild(ctx, "pg2"); !activities.IsPermanent(err) || !strings.Contains(err.Error(), "lab setting") {
		t.Fatalf("rebuild without lab: %v", err)
	}
	if err := c.Promote(ctx, "pg3"); !activities.IsPermanent(err) || !strings.Contains(err.Error(), "have: pg1, pg2") {
		t.Fatalf("unknown node: %v", err)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{}, "at least two"},
		{map[string]any{"nodes": map[string]any{"a": "postgres://x/y", "b": "port=notanumber"}}, "nodes.b"},
		{map[string]any{"nodes": map[string]any{"a": "postgres://x/y", "b": "postgres://z/y"}, "timeout": "x"}, "timeout"},
		{map[string]any{"nodes": map[string]any{"a": "postgres://x/y", "b": "postgres://z/y"}, "labb": "x"}, "labb"},
	} {
		if _, err := New(tc.cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
