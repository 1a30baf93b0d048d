package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	ucli "github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/audit"
	"github.com/drillship/drillship/dora"
	"github.com/drillship/drillship/pipeline"
	"github.com/drillship/drillship/workflows"
)

var (
	metricsFlag = &ucli.StringFlag{Name: "metrics", EnvVars: []string{"DRILLSHIP_METRICS"},
		Usage: "serve Prometheus /metrics on this address (e.g. 127.0.0.1:9090): the Temporal SDK's metrics, drillship's own (deploy duration, time to rollback, drill phases, outcomes, break-glass, policy refusals) and the DORA figures"}
	doraWindowFlag = &ucli.DurationFlag{Name: "dora-window", Value: 30 * 24 * time.Hour, Usage: "with --metrics: how far back the DORA figures look"}
)

// startMetrics serves /metrics when --metrics is set; nil otherwise. Its
// SDKHandler goes into the client, its Interceptor into the worker; call
// watchDORA once the client exists. stop ends it all.
func startMetrics(c *ucli.Context) (m *pipeline.Metrics, stop func(), err error) {
	addr := c.String("metrics")
	if addr == "" {
		return nil, func() {}, nil
	}
	m = pipeline.New()
	srv, err := m.Serve(addr)
	if err != nil {
		m.Close()
		return nil, nil, usageErr("--metrics %s: %v", addr, err)
	}
	fmt.Fprintf(c.App.ErrWriter, "metrics on %s\n", srv.URL())
	return m, func() { _ = srv.Close(); m.Close() }, nil
}

// watchDORA keeps the DORA figures on /metrics current from the deploys
// Temporal knows and the failures people marked in the audit log.
func watchDORA(ctx context.Context, c *ucli.Context, m *pipeline.Metrics, cl client.Client, log *slog.Logger) {
	window := c.Duration("dora-window")
	loader := &dora.Loader{Client: cl}
	go m.WatchDORA(ctx, func(ctx context.Context) ([]workflows.DeployResult, []dora.Mark, error) {
		rs, err := loader.Load(ctx, window)
		if err != nil {
			return nil, nil, err
		}
		marks, err := dora.MarksFromAudit(audit.Path(""))
		if err != nil {
			log.Warn("DORA: failure marks not read", "err", err)
		}
		return rs, marks, nil
	}, window, time.Minute, log)
}

// deployMarkFailed records in the audit log that a deploy caused a
// failure in production, for the DORA change failure rate and time to
// restore: the failures no rollback or hotfix shows.
func deployMarkFailed() *ucli.Command {
	return &ucli.Command{
		Name:      "mark-failed",
		Usage:     "mark a finished deploy as having caused a failure in production (DORA change failure rate; kept in the audit log)",
		ArgsUsage: "ID",
		Flags: withClientFlags(whoFlag,
			&ucli.StringFlag{Name: "reason", Usage: "what failed (required)"},
			&ucli.TimestampFlag{Name: "failed-at", Layout: time.RFC3339, Usage: "when the failure began (RFC 3339), for time to restore"},
			&ucli.TimestampFlag{Name: "restored-at", Layout: time.RFC3339, Usage: "when service was restored (RFC 3339); without it, the fix that followed (a revert or hotfix) ends it"},
			&ucli.StringFlag{Name: "audit-log", EnvVars: []string{audit.EnvFile}, Usage: "the audit log (default " + audit.DefaultFile + ")"},
		),
		Action: func(c *ucli.Context) error {
			id, err := oneArg(c, "deploy id (deploy/<service>/<version>)")
			if err != nil {
				return err
			}
			if c.String("reason") == "" {
				return usageErr("--reason is required: say what failed")
			}
			m := dora.Mark{Deploy: id, Who: c.String("who"), Reason: c.String("reason")}
			if t := c.Timestamp("failed-at"); t != nil {
				m.FailedAt = t.UnixMilli()
			}
			if t := c.Timestamp("restored-at"); t != nil {
				m.RestoredAt = t.UnixMilli()
			}
			if m.FailedAt > 0 && m.RestoredAt > 0 && m.RestoredAt <= m.FailedAt {
				return usageErr("--restored-at must be after --failed-at")
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			var res workflows.DeployResult
			if err := cl.GetWorkflow(c.Context, id, "").Get(c.Context, &res); err != nil && !workflows.RecordOf(err, &res) {
				return usageErr("%s: no finished deploy with a record (%v); nothing was marked", id, err)
			}
			rec, err := audit.Append(audit.Path(c.String("audit-log")), dora.MarkRecord(m, res.Service, res.Version))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s marked as a change failure (%s, audit record %d)\n", id, res.Outcome, rec.Seq)
			return nil
		},
	}
}
