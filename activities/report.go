package activities

import (
	"context"

	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/report"
)

// ReportInput writes a drill's reports to a directory.
type ReportInput struct {
	Dir    string        `json:"dir"`
	Record ledger.Record `json:"record"`
}

// WriteReport writes the JSON, Markdown and HTML reports of a drill, so that
// they outlive Temporal's retention. Rewriting them is harmless.
func (a *Activities) WriteReport(ctx context.Context, in ReportInput) ([]string, error) {
	files, err := report.WriteDir(in.Dir, in.Record)
	return files, wrap("write reports", err)
}
