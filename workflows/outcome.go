package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"
)

// Error types of the ways a deploy or drill can end other than as hoped.
// Such a run ends failed in Temporal terms, so the UI's list and
// workflow-failure alerts show it; its record travels as the error's details.
const (
	ErrRolledBack     = "RolledBack"
	ErrAborted        = "Aborted"
	ErrRollbackFailed = "RollbackFailed"
	ErrRefused        = "Refused"
	ErrNotRecovered   = "NotRecovered"
	ErrRestoreFailed  = "RestoreFailed"
)

// endedAs fails the workflow with a typed, non-retryable error whose details
// are the run's record.
func endedAs(errType, msg string, record any) error {
	return temporal.NewNonRetryableApplicationError(msg, errType, nil, record)
}

// RecordOf reads the record a failed deploy or drill carries in its error
// details into out. It reports false when err carries none (a crash, a
// termination, a timeout).
func RecordOf(err error, out any) bool {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.HasDetails() {
		return false
	}
	return app.Details(out) == nil
}

// EndingOf is the error type of a failed deploy or drill ("RolledBack",
// ...), or "" when err is not one of them.
func EndingOf(err error) string {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		return ""
	}
	return app.Type()
}
