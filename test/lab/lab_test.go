package lab

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/haproxy"
	"github.com/drillship/drillship/activities/postgres"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/lab"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

// labStack starts the embedded Temporal and a worker whose providers find
// the lab through `lab: default`, that is $DRILLSHIP_LAB_DIR, as a worker
// started after `drillship lab up` would.
func labStack(t *testing.T, l *lab.Lab) *devenv.Env {
	t.Helper()
	t.Setenv(lab.DirEnv, l.Dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env, err := devenv.Start(ctx, devenv.Options{NoLocal: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	return env
}

func TestLabCanary(t *testing.T) {
	l := lab.Start(t, lab.Options{Parts: lab.PartHAProxy | lab.PartPrometheus, LoadRPS: 100})
	env := labStack(t, l)
	spec, err := deploys.Load("../../deploys/lab-canary.yaml", env.Registry)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := haproxy.New(l.Settings()["haproxy"])
	if err != nil {
		t.Fatal(err)
	}
	weights := func() activities.Weights {
		t.Helper()
		w, err := hc.Weights(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return w
	}

	// v2 fails every 10th request: the PromQL error rate on the real
	// Prometheus says 0.1 > 0.05, and the deploy rolls back.
	l.Service("v2").SetErrorRate(0.1)
	res := harness.RunDeploy(t, env, *spec, "v2")
	if res.Outcome != workflows.OutcomeRolledBack || !strings.Contains(res.Reason, "error-rate") {
		t.Fatalf("bad v2: outcome %s (%s), want rolled back on error-rate", res.Outcome, res.Reason)
	}
	if w := weights(); w["v1"] != 100 || w["v2"] != 0 {
		t.Fatalf("HAProxy weights after rollback %v, want v1=100 v2=0", w)
	}
	rs := l.ReleaseState()
	if rs.Stable != "v1" || harness.Contains(rs.Running, "v2") {
		t.Fatalf("release after rollback %+v, want stable v1 and v2 stopped", rs)
	}
	t.Logf("rollback: %s; time to rollback %vms", res.Reason, deref(res.TimeToRollbackMs))

	// A good v2 is deployed again (served again), judged and promoted,
	// once the bad run's errors have left the 5s rate window.
	l.Service("v2").SetErrorRate(0)
	time.Sleep(7 * time.Second)
	res = harness.RunDeploy(t, env, *spec, "v2")
	if res.Outcome != workflows.OutcomePromoted {
		t.Fatalf("good v2: outcome %s (%s), want promoted", res.Outcome, res.Reason)
	}
	if w := weights(); w["v2"] != 100 || w["v1"] != 0 {
		t.Fatalf("HAProxy weights after promotion %v, want v2=100 v1=0", w)
	}
	rs = l.ReleaseState()
	if rs.Stable != "v2" || harness.Contains(rs.Running, "v1") || !harness.Contains(rs.Running, "v2") {
		t.Fatalf("release after promotion %+v, want stable v2, v1 stopped", rs)
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestLabDBPrimaryLossSync(t *testing.T) {
	l := lab.Start(t, lab.Options{Parts: lab.PartPostgres, SyncReplication: true})
	env := labStack(t, l)
	spec, err := drills.Load("../../drills/db-primary-loss.yaml", env.Registry)
	if err != nil {
		t.Fatal(err)
	}
	rec := harness.RunDrill(t, env, *spec, "")
	if rec.Outcome != ledger.OutcomeRecovered || !rec.Restored {
		t.Fatalf("outcome %s (%s), restored %v, findings %+v", rec.Outcome, rec.Reason, rec.Restored, rec.Findings)
	}
	if rec.RTOMs == nil || *rec.RTOMs <= 0 || rec.RPO == nil || *rec.RPO != 0 {
		t.Fatalf("RTO %v ms, RPO %v rows: want RTO > 0 and RPO 0 (synchronous replication); events %+v", deref(rec.RTOMs), rec.RPO, rec.Events)
	}
	var wl string
	for _, e := range rec.Events {
		if e.Kind == "workload" {
			wl = e.Detail
		}
	}
	if !strings.Contains(wl, "counted on pg2") || !strings.Contains(wl, "repointed 1 times") {
		t.Fatalf("workload event %q: want writes repointed to pg2 and counted there", wl)
	}
	for _, m := range []string{ledger.Injected, ledger.Detected, ledger.Mitigated, ledger.Recovered, ledger.Restored} {
		if _, ok := rec.MarkAt(m); !ok {
			t.Fatalf("mark %s missing: %+v", m, rec.Marks)
		}
	}

	// Read the cluster back: pg2 is the primary, pg1 streams from it again.
	c, err := postgres.New(map[string]any{"lab": l.StatePath()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if nodes[0].Name != "pg1" || nodes[0].Role != postgres.RoleReplica || !nodes[0].Streaming || nodes[1].Role != postgres.RolePrimary {
		t.Fatalf("after restore %+v, want pg1 streaming replica, pg2 primary", nodes)
	}
	pg2, _ := l.Postgres.Node(lab.PGReplica)
	if got := sqlValue[string](t, pg2.DSN, "SELECT state FROM pg_stat_replication WHERE application_name = 'pg1'"); got != "streaming" {
		t.Fatalf("pg_stat_replication on pg2 says pg1 is %q, want streaming", got)
	}
	// Writes went on: the workload's table on the new primary holds rows
	// written after the failover (the workload's seqs keep counting up).
	table := sqlValue[string](t, pg2.DSN, "SELECT max(relname)::text FROM pg_class WHERE relkind = 'r' AND relname LIKE 'drillship_wl_%'")
	if n := sqlValue[int64](t, pg2.DSN, "SELECT count(*) FROM "+table); n < 20 {
		t.Fatalf("%s on pg2 has %d rows, want the workload's writes", table, n)
	}
	t.Logf("sync: RTO %dms, RPO %d rows; %s", *rec.RTOMs, *rec.RPO, wl)
}

// TestLabWorkloadAsyncRPO measures RPO at the Workloader level: making a
// replica lag on cue inside a drill is not possible, so the test drives the
// fault itself around the provider's Workload. It cuts pg2 off from pg1
// (a lagging standby), lets writes land on pg1 alone, kills pg1, promotes
// pg2 and then counts the lost rows itself on pg1's own data, started again
// on its own after the workload ended.
func TestLabWorkloadAsyncRPO(t *testing.T) {
	l := lab.Start(t, lab.Options{Parts: lab.PartPostgres})
	pg1, _ := l.Postgres.Node(lab.PGPrimary)
	pg2, _ := l.Postgres.Node(lab.PGReplica)
	c, err := postgres.New(map[string]any{"lab": l.StatePath()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var prog postgres.WorkloadProgress
	progress := func() postgres.WorkloadProgress { mu.Lock(); defer mu.Unlock(); return prog }
	type outcome struct {
		r   activities.WorkloadResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := c.Workload(ctx, 20*time.Millisecond, time.Second, func(d any) {
			mu.Lock()
			prog = d.(postgres.WorkloadProgress)
			mu.Unlock()
		})
		done <- outcome{r, err}
	}()
	waitUntil(t, "20 acknowledged writes", 30*time.Second, func() bool { return progress().Acked >= 20 })
	table := progress().Table

	sqlExec(t, pg2.DSN, "ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()")
	waitUntil(t, "pg2's WAL receiver to stop", 10*time.Second, func() bool {
		return sqlValue[int64](t, pg2.DSN, "SELECT count(*) FROM pg_stat_wal_receiver") == 0
	})
	waitUntil(t, "pg2 to replay what it received", 10*time.Second, func() bool {
		return sqlValue[bool](t, pg2.DSN, "SELECT pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()")
	})
	replicaHas := sqlValue[int64](t, pg2.DSN, "SELECT coalesce(max(seq), 0) FROM "+table)
	from := progress().Acked
	waitUntil(t, "20 more writes on pg1 alone", 30*time.Second, func() bool { return progress().Acked >= from+20 })

	killedAt, err := l.KillNode(lab.PGPrimary)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, lab.PGReplica); err != nil {
		t.Fatal(err)
	}
	var o outcome
	select {
	case o = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the workload did not end within a minute of the promotion")
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	r := o.r
	if r.FirstFailureAt <= 0 || r.RecoveredAt <= r.FirstFailureAt || r.RecoveredAt <= killedAt.UnixMilli() {
		t.Fatalf("result %+v (killed at %d): want first failure, then recovery after the kill", r, killedAt.UnixMilli())
	}
	if !strings.Contains(r.Detail, "counted on pg2") {
		t.Fatalf("detail %q: want the count on the new primary pg2", r.Detail)
	}

	// The test's own count: pg1's data, started alone, holds every row it
	// committed; those past what pg2 had when it was cut off are lost.
	if err := l.Postgres.Start(ctx, lab.PGPrimary); err != nil {
		t.Fatal(err)
	}
	lost := sqlValue[int64](t, pg1.DSN, "SELECT count(*) FROM "+table+" WHERE seq > $1", replicaHas)
	lastOnPG1 := sqlValue[int64](t, pg1.DSN, "SELECT max(seq) FROM "+table)
	onPG2 := sqlValue[int64](t, pg2.DSN, "SELECT count(*) FROM "+table+" WHERE seq > $1 AND seq <= $2", replicaHas, lastOnPG1)
	if lost < 20 || r.Missing != lost || onPG2 != 0 {
		t.Fatalf("workload RPO %d rows; the test counts %d rows on pg1 past seq %d (and %d of them on pg2)", r.Missing, lost, replicaHas, onPG2)
	}
	t.Logf("async: RPO %d rows (test count %d), RTO %dms from the kill, acked %d; %s",
		r.Missing, lost, r.RecoveredAt-killedAt.UnixMilli(), r.Acked, r.Detail)
}

func waitUntil(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sqlValue[T any](t *testing.T, dsn, q string, args ...any) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v T
	if err := conn.QueryRow(ctx, q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func sqlExec(t *testing.T, dsn string, qs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
