package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Writer stands in for an application during a database drill: it commits
// numbered rows at a steady rate to the node the application points at,
// remembers which numbers were acknowledged, and when writes came back after
// a failure. Acknowledged rows missing after a failover are the RPO; the
// first write after the failure, less the fault's time, is the RTO.
type Writer struct {
	table    string
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	mu          sync.Mutex
	dsn         string
	acked       []int64
	next        int64
	failures    int
	lastErr     error
	failing     bool
	failedAt    time.Time
	recoveredAt time.Time
	firstAckAt  time.Time
	cancel      context.CancelFunc
	done        chan struct{}
	conn        *pgx.Conn // only the write loop touches it
	connDSN     string
}

// WriterOptions tune a Writer.
type WriterOptions struct {
	Table    string        // default drillship_rpo
	Interval time.Duration // between writes, default 10ms
	Timeout  time.Duration // per connect and per write, default 1s
	Logger   *slog.Logger
}

// WriterStats is what a Writer observed.
type WriterStats struct {
	Acked    int   // writes acknowledged
	Highest  int64 // highest acknowledged seq, 0 if none
	Failures int   // writes that failed
	LastErr  string
	// FailedAt is the first failure of the latest run of failures;
	// RecoveredAt the first success after it (zero while still failing).
	FailedAt    time.Time
	RecoveredAt time.Time
	// FirstAckAt is when the first write was acknowledged.
	FirstAckAt time.Time
}

// AppName is the application_name of the writer's sessions, so that
// pg_stat_activity shows them.
const AppName = "drillship-workload"

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// NewWriter returns a writer that will write to dsn.
func NewWriter(dsn string, o WriterOptions) (*Writer, error) {
	if o.Table == "" {
		o.Table = "drillship_rpo"
	}
	if !tableName.MatchString(o.Table) {
		return nil, fmt.Errorf("postgres: writer table %q: want a lower-case SQL identifier", o.Table)
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if _, err := pgx.ParseConfig(dsn); err != nil {
		return nil, fmt.Errorf("postgres: writer dsn: %w", err)
	}
	return &Writer{table: o.Table, interval: o.Interval, timeout: o.Timeout, log: o.Logger, dsn: dsn}, nil
}

// Setup creates the table on the current node. Run it before Start, on the
// primary: replicas get the table by replication.
func (w *Writer) Setup(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, w.target())
	if err != nil {
		return fmt.Errorf("postgres: writer setup: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (seq bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`, w.table))
	if err != nil {
		return fmt.Errorf("postgres: writer setup: %w", err)
	}
	// Continue after rows left by an earlier run.
	var max int64
	if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(max(seq), 0) FROM %s`, w.table)).Scan(&max); err != nil {
		return fmt.Errorf("postgres: writer setup: %w", err)
	}
	w.mu.Lock()
	if w.next < max {
		w.next = max
	}
	w.mu.Unlock()
	return nil
}

// Start begins writing until Stop or ctx ends.
func (w *Writer) Start(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done != nil {
		return
	}
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	go w.loop(ctx, w.done)
}

// Stop stops writing and waits for the last write to end.
func (w *Writer) Stop() {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.cancel, w.done = nil, nil
	w.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Repoint sends the following writes to dsn (the application's failover).
func (w *Writer) Repoint(dsn string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dsn = dsn
}

func (w *Writer) target() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dsn
}

func (w *Writer) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	defer func() {
		if w.conn != nil {
			w.conn.Close(context.Background())
		}
	}()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.write(ctx)
	}
}

// write commits the next seq. Every attempt takes a new number, so a
// commit whose answer was lost (the node died mid-commit) is never counted
// as acknowledged nor reused.
func (w *Writer) write(ctx context.Context) {
	w.mu.Lock()
	w.next++
	seq, dsn := w.next, w.dsn
	w.mu.Unlock()

	err := w.insert(ctx, dsn, seq)
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.failures++
		w.lastErr = err
		if !w.failing {
			w.failing, w.failedAt, w.recoveredAt = true, now, time.Time{}
			w.log.Info("postgres writer: writes failing", "seq", seq, "err", err)
		}
		return
	}
	w.acked = append(w.acked, seq)
	if w.firstAckAt.IsZero() {
		w.firstAckAt = now
	}
	if w.failing {
		w.failing, w.recoveredAt = false, now
		w.log.Info("postgres writer: writes back", "seq", seq, "after", now.Sub(w.failedAt))
	}
}

func (w *Writer) insert(ctx context.Context, dsn string, seq int64) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	if w.conn != nil && w.connDSN != dsn {
		w.conn.Close(context.Background())
		w.conn = nil
	}
	if w.conn == nil {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return err
		}
		cfg.RuntimeParams["application_name"] = AppName
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		w.conn, w.connDSN = conn, dsn
	}
	_, err := w.conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (seq) VALUES ($1)`, w.table), seq)
	if err != nil {
		// The session may be dead or stuck; start a fresh one next time.
		w.conn.Close(context.Background())
		w.conn = nil
	}
	return err
}

// Stats returns what the writer observed so far.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := WriterStats{Acked: len(w.acked), Failures: w.failures, FailedAt: w.failedAt, RecoveredAt: w.recoveredAt, FirstAckAt: w.firstAckAt}
	if len(w.acked) > 0 {
		s.Highest = w.acked[len(w.acked)-1]
	}
	if w.lastErr != nil {
		s.LastErr = w.lastErr.Error()
	}
	return s
}

// Acked returns the acknowledged seqs, ascending.
func (w *Writer) Acked() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.acked...)
}

// CountMissing returns the acknowledged seqs that the node at dsn (the new
// primary) does not have, ascending: the writes the failover lost.
func (w *Writer) CountMissing(ctx context.Context, dsn string) ([]int64, error) {
	acked := w.Acked()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: count missing: %w", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT seq FROM %s WHERE seq = ANY($1)`, w.table), acked)
	if err != nil {
		return nil, fmt.Errorf("postgres: count missing: %w", err)
	}
	present, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("postgres: count missing: %w", err)
	}
	have := make(map[int64]bool, len(present))
	for _, s := range present {
		have[s] = true
	}
	missing := []int64{}
	for _, s := range acked {
		if !have[s] {
			missing = append(missing, s)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	return missing, nil
}
