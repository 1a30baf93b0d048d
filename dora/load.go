package dora

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/workflows"
)

// Loader reads finished deploys from Temporal: the list from visibility,
// each record from its result (promoted) or its failure's details (the
// others). A closed run's record never changes, so each is read once.
type Loader struct {
	Client client.Client

	mu    sync.Mutex
	cache map[string]workflows.DeployResult // by run id
}

// Load returns the records of deploys started within window before now
// that have finished. Runs without a record (terminated, timed out) are
// left out.
func (l *Loader) Load(ctx context.Context, window time.Duration) ([]workflows.DeployResult, error) {
	since := time.Now().Add(-window).UTC().Format(time.RFC3339)
	q := fmt.Sprintf("%s = 'deploy' AND ExecutionStatus != 'Running' AND StartTime > '%s'", workflows.AttrKind.GetName(), since)
	l.mu.Lock()
	if l.cache == nil {
		l.cache = map[string]workflows.DeployResult{}
	}
	l.mu.Unlock()
	var out []workflows.DeployResult
	var token []byte
	for {
		resp, err := l.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token, PageSize: 1000})
		if err != nil {
			return nil, fmt.Errorf("list deploys: %w", err)
		}
		for _, e := range resp.Executions {
			id, run := e.Execution.WorkflowId, e.Execution.RunId
			l.mu.Lock()
			res, ok := l.cache[run]
			l.mu.Unlock()
			if !ok {
				err := l.Client.GetWorkflow(ctx, id, run).Get(ctx, &res)
				if err != nil && !workflows.RecordOf(err, &res) {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					continue
				}
				l.mu.Lock()
				l.cache[run] = res
				l.mu.Unlock()
			}
			out = append(out, res)
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			return out, nil
		}
	}
}
