package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/drillship/drillship/workflows"
)

// kindQuery selects drillship's workflows of one kind (deploy, drill). The
// attribute names come from package workflows so that a rename there cannot
// leave a list command querying a name nobody writes.
func kindQuery(kind string) string {
	return fmt.Sprintf("%s = '%s'", workflows.AttrKind.GetName(), quoteless(kind))
}

// serviceQuery narrows a query to one service.
func serviceQuery(service string) string {
	return fmt.Sprintf(" AND %s = '%s'", workflows.AttrService.GetName(), quoteless(service))
}

// quoteless drops single quotes, which would end the literal in a
// visibility query.
func quoteless(s string) string { return strings.ReplaceAll(s, "'", "") }

type listRow struct {
	ID     string            `json:"id"`
	RunID  string            `json:"runId"`
	Status string            `json:"status"`
	Start  time.Time         `json:"start"`
	Close  time.Time         `json:"close,omitzero"`
	Attrs  map[string]string `json:"attributes"`
}

// decodeAttrs renders the keyword and int search attributes as text.
func decodeAttrs(sa *commonpb.SearchAttributes) map[string]string {
	out := map[string]string{}
	if sa == nil {
		return out
	}
	dc := converter.GetDefaultDataConverter()
	for k, p := range sa.IndexedFields {
		var v any
		if err := dc.FromPayload(p, &v); err == nil {
			switch x := v.(type) {
			case string:
				out[k] = x
			case float64:
				out[k] = formatNum(x)
			}
		}
	}
	return out
}

func formatNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
