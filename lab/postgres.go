package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresInfo is the lab's PostgreSQL pair: where the binaries and data are
// and which nodes run on which ports.
type PostgresInfo struct {
	BinDir string `json:"binDir"`
	// Root holds the data directories and logs; RemoveRoot says the lab made
	// it outside Dir (as root the data must live where the postgres user can
	// reach it) and removes it on Down.
	Root       string   `json:"root"`
	RemoveRoot bool     `json:"removeRoot,omitempty"`
	RunAs      *Account `json:"runAs,omitempty"`
	Sync       bool     `json:"sync"`
	// Tied servers get SIGKILL when the process that started them dies
	// (Options.DieWithParent).
	Tied  bool     `json:"tied,omitempty"`
	Nodes []PGNode `json:"nodes"`
}

// PGNode is one PostgreSQL server of the lab.
type PGNode struct {
	Name    string `json:"name"`
	Port    int    `json:"port"`
	DataDir string `json:"dataDir"`
	Log     string `json:"log"`
	DSN     string `json:"dsn"`
}

// Lab node names: pg1 starts as the primary, pg2 as its streaming replica.
const (
	PGPrimary = "pg1"
	PGReplica = "pg2"
)

// Node returns the node called name.
func (p *PostgresInfo) Node(name string) (PGNode, error) {
	for _, n := range p.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	names := make([]string, len(p.Nodes))
	for i, n := range p.Nodes {
		names[i] = n.Name
	}
	return PGNode{}, fmt.Errorf("lab: no postgres node %q (have: %s)", name, strings.Join(names, ", "))
}

func (p *PostgresInfo) bin(name string) string { return filepath.Join(p.BinDir, name) }

func dsn(port int) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port)
}

// nodeConf is appended to postgresql.conf. Settings later in the file win,
// so a replica copied from its primary gets its own port this way.
func nodeConf(port int) string {
	return fmt.Sprintf(`
# drillship lab
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = ''
max_connections = 40
shared_buffers = 16MB
wal_keep_size = 256MB
hot_standby = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 1s
# The lab kills postgres, never the machine: the page cache survives, so
# fsync buys nothing here and slows every commit.
fsync = off
`, port)
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return fmt.Errorf("lab: %w", err)
	}
	return f.Close()
}

// upPostgres creates pg1 with initdb, clones pg2 from it with pg_basebackup
// and, with sync, makes pg2 a synchronous standby.
func upPostgres(ctx context.Context, dir string, sync, tied bool) (*PostgresInfo, error) {
	initdb, err := lookBinary(binInitdb)
	if err != nil {
		return nil, err
	}
	for _, b := range []binary{binPostgres, binPgBasebackup} {
		if _, err := lookBinary(b); err != nil {
			return nil, err
		}
	}
	acct, err := pgAccount()
	if err != nil {
		return nil, err
	}
	// initdb may be a symlink on PATH; its siblings live where it points.
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		initdb = real
	}
	p := &PostgresInfo{BinDir: filepath.Dir(initdb), RunAs: acct, Sync: sync, Tied: tied}
	for _, b := range []binary{binPostgres, binPgBasebackup} {
		if _, err := os.Stat(p.bin(b.name)); err != nil {
			return nil, fmt.Errorf("lab: %s not beside initdb in %s: install the Debian package %q", b.name, p.BinDir, b.pkg)
		}
	}
	if acct != nil {
		// Dir may sit under a 0700 directory of root (t.TempDir does that),
		// which the postgres user cannot enter.
		p.Root, err = os.MkdirTemp("", "drillship-lab-pg-")
		if err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		p.RemoveRoot = true
		if err := acct.chown(p.Root); err != nil {
			return p, fmt.Errorf("lab: %w", err)
		}
	} else {
		p.Root = filepath.Join(dir, "pg")
		if err := os.MkdirAll(p.Root, 0o700); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	for _, name := range []string{PGPrimary, PGReplica} {
		port, err := freePort()
		if err != nil {
			return p, err
		}
		p.Nodes = append(p.Nodes, PGNode{
			Name: name, Port: port, DSN: dsn(port),
			DataDir: filepath.Join(p.Root, name),
			Log:     filepath.Join(p.Root, name+".log"),
		})
	}
	primary := p.Nodes[0]
	if err := acct.run(p.Root, initdb, "-D", primary.DataDir, "-U", "postgres", "--auth=trust",
		"--no-sync", "--encoding=UTF8", "--locale=C"); err != nil {
		return p, err
	}
	if err := appendFile(filepath.Join(primary.DataDir, "postgresql.conf"), nodeConf(primary.Port)); err != nil {
		return p, err
	}
	if err := p.start(ctx, primary); err != nil {
		return p, err
	}
	if err := p.clone(ctx, p.Nodes[1], primary); err != nil {
		return p, err
	}
	if sync {
		// Set on the primary only, after the clone: the replica's copy of the
		// settings stays asynchronous, so once promoted it accepts writes
		// without waiting for a standby it does not have.
		if err := execSQL(ctx, primary.DSN,
			"ALTER SYSTEM SET synchronous_standby_names = '*'", "SELECT pg_reload_conf()"); err != nil {
			return p, err
		}
		if err := waitSQL(ctx, primary.DSN, 20*time.Second,
			"SELECT count(*) > 0 FROM pg_stat_replication WHERE application_name = $1 AND sync_state = 'sync'", p.Nodes[1].Name); err != nil {
			return p, fmt.Errorf("lab: %s did not become a synchronous standby: %w", p.Nodes[1].Name, err)
		}
	}
	return p, nil
}

// start runs the node's postmaster as a child of this process (in its own
// session, so it outlives a `lab up` that exits) and waits until it accepts
// connections. A child, not a pg_ctl daemon: this process reaps it when it
// dies, where an orphan would stay a zombie under an init that does not reap.
func (p *PostgresInfo) start(ctx context.Context, n PGNode) error {
	// A killed postmaster leaves its pid file; if that pid is a zombie not
	// yet reaped, postgres would take it for a running server.
	if pid := n.pid(); pid > 0 && !alive(pid) {
		_ = os.Remove(filepath.Join(n.DataDir, "postmaster.pid"))
	}
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("lab: %s log: %w", n.Name, err)
	}
	defer logf.Close()
	cmd := p.RunAs.command(p.Root, p.bin("postgres"), "-D", n.DataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if p.Tied {
		// Go sets it after switching to the postgres user, which would
		// otherwise clear it.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("lab: start %s: %w", n.Name, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(d.done) }()
	if err := waitReady(ctx, d, n.Log, 60*time.Second, func() bool {
		ok, _ := queryBool(ctx, n.DSN, "SELECT true")
		return ok
	}); err != nil {
		return fmt.Errorf("lab: postgres %s: %w", n.Name, err)
	}
	return nil
}

// pid reads the postmaster's pid from its lock file; 0 when there is none.
func (n PGNode) pid() int {
	b, err := os.ReadFile(filepath.Join(n.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// PID returns the postmaster's pid, 0 when the node is not running.
func (n PGNode) PID() int {
	if pid := n.pid(); alive(pid) {
		return pid
	}
	return 0
}

// clone makes n a streaming replica of primary: pg_basebackup -R writes the
// standby.signal and primary_conninfo (with n's name as application_name,
// which pg_stat_replication shows), then n starts on its own port.
func (p *PostgresInfo) clone(ctx context.Context, n, primary PGNode) error {
	conn := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=%s", primary.Port, n.Name)
	if err := p.RunAs.run(p.Root, p.bin("pg_basebackup"), "-D", n.DataDir, "-R", "-X", "stream",
		"-c", "fast", "--no-sync", "-d", conn); err != nil {
		return err
	}
	if err := appendFile(filepath.Join(n.DataDir, "postgresql.conf"), nodeConf(n.Port)); err != nil {
		return err
	}
	if err := p.start(ctx, n); err != nil {
		return err
	}
	if err := waitSQL(ctx, primary.DSN, 30*time.Second,
		"SELECT count(*) > 0 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", n.Name); err != nil {
		return fmt.Errorf("lab: %s is not streaming from %s: %w", n.Name, primary.Name, err)
	}
	return nil
}

// Kill sends SIGKILL to the node's postmaster and all its backends (a
// crash), waits until they are gone and returns when that happened.
func (p *PostgresInfo) Kill(name string) (time.Time, error) {
	n, err := p.Node(name)
	if err != nil {
		return time.Time{}, err
	}
	pid := n.pid()
	if pid == 0 || !alive(pid) {
		return time.Now(), nil
	}
	// The lab starts the postmaster as a session leader, so its group holds
	// every backend, the WAL writer and the WAL senders.
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		return time.Time{}, fmt.Errorf("lab: kill %s (pid %d): %w", name, pid, err)
	}
	at := time.Now()
	if !waitDead(pid, 10*time.Second) {
		return at, fmt.Errorf("lab: %s (pid %d) still running after SIGKILL", name, pid)
	}
	return at, nil
}

// Stop shuts the node down (fast shutdown: sessions are cut, nothing is
// lost), killing it if it does not stop in time. A stopped node is fine.
func (p *PostgresInfo) Stop(name string) error {
	n, err := p.Node(name)
	if err != nil {
		return err
	}
	pid := n.pid()
	if pid == 0 {
		return nil
	}
	if err := stopPID(pid, syscall.SIGINT, 20*time.Second); err != nil {
		return fmt.Errorf("lab: stop %s: %w", name, err)
	}
	// Backends of a killed postmaster exit on their own; make sure.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return nil
}

// Start starts a stopped node with its existing data.
func (p *PostgresInfo) Start(ctx context.Context, name string) error {
	n, err := p.Node(name)
	if err != nil {
		return err
	}
	if n.PID() != 0 {
		return nil
	}
	return p.start(ctx, n)
}

// Rebuild replaces node's data with a fresh base backup of primary and
// starts it as a streaming replica of primary. It stops node first.
func (p *PostgresInfo) Rebuild(ctx context.Context, name, primary string) error {
	if name == primary {
		return fmt.Errorf("lab: rebuild %s: it cannot be a replica of itself", name)
	}
	n, err := p.Node(name)
	if err != nil {
		return err
	}
	pn, err := p.Node(primary)
	if err != nil {
		return err
	}
	if err := p.Stop(name); err != nil {
		return err
	}
	if err := os.RemoveAll(n.DataDir); err != nil {
		return fmt.Errorf("lab: rebuild %s: %w", name, err)
	}
	return p.clone(ctx, n, pn)
}

func (p *PostgresInfo) down() error {
	var first error
	for _, n := range p.Nodes {
		if err := p.Stop(n.Name); err != nil && first == nil {
			first = err
		}
	}
	if p.RemoveRoot && p.Root != "" {
		if err := os.RemoveAll(p.Root); err != nil && first == nil {
			first = fmt.Errorf("lab: %w", err)
		}
	}
	return first
}

func execSQL(ctx context.Context, dsn string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("lab: connect: %w", err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("lab: %s: %w", s, err)
		}
	}
	return nil
}

// waitSQL polls a boolean query until it is true or d passes.
func waitSQL(ctx context.Context, dsn string, d time.Duration, q string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		ok, err := queryBool(ctx, dsn, q, args...)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func queryBool(ctx context.Context, dsn, q string, args ...any) (bool, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var ok bool
	err = conn.QueryRow(ctx, q, args...).Scan(&ok)
	return ok, err
}
