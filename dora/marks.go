package dora

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/drillship/drillship/audit"
)

// ActionCausedFailure is the audit log action of a person's mark that a
// deploy caused a failure in production: the log is permanent and
// outlives Temporal's retention, as a change failure's record should.
const ActionCausedFailure = "caused-failure"

// markTimes travel in the record's Detail.
type markTimes struct {
	FailedAt   int64 `json:"failedAt,omitempty"`
	RestoredAt int64 `json:"restoredAt,omitempty"`
}

// MarkRecord is the audit record of m. Its key makes marking the same
// deploy twice by the same person one record.
func MarkRecord(m Mark, service, version string) audit.Record {
	d, _ := json.Marshal(markTimes{FailedAt: m.FailedAt, RestoredAt: m.RestoredAt})
	return audit.Record{Key: ActionCausedFailure + "/" + m.Deploy + "/" + m.Who, Action: ActionCausedFailure,
		Who: m.Who, Reason: m.Reason, Workflow: m.Deploy, Service: service, Version: version, Detail: string(d)}
}

// MarksFromAudit reads the failure marks in the audit log at path; a log
// that does not exist has none.
func MarksFromAudit(path string) ([]Mark, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Mark
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for line := 1; sc.Scan(); line++ {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return out, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if r.Action != ActionCausedFailure {
			continue
		}
		m := Mark{Deploy: r.Workflow, Who: r.Who, Reason: r.Reason}
		var t markTimes
		if r.Detail != "" && json.Unmarshal([]byte(r.Detail), &t) == nil {
			m.FailedAt, m.RestoredAt = t.FailedAt, t.RestoredAt
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
