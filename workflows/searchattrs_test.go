package workflows

import (
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
)

// Every attribute drillship registers carries its prefix, so that none can
// collide with another team's generic Service or Phase in a shared namespace.
func TestSearchAttributesArePrefixed(t *testing.T) {
	want := map[string]enumspb.IndexedValueType{
		"DrillshipKind":        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"DrillshipService":     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"DrillshipVersion":     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"DrillshipEnvironment": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"DrillshipScenario":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"DrillshipOutcome":     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"DrillshipStep":        enumspb.INDEXED_VALUE_TYPE_INT,
		"DrillshipPhase":       enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
	got := SearchAttributes()
	if len(got) != len(want) {
		t.Fatalf("SearchAttributes() has %d names %v, want %d", len(got), got, len(want))
	}
	for name, typ := range want {
		if got[name] != typ {
			t.Errorf("SearchAttributes()[%s] = %v, want %v", name, got[name], typ)
		}
	}
	for name := range got {
		if !strings.HasPrefix(name, "Drillship") {
			t.Errorf("search attribute %s lacks the Drillship prefix", name)
		}
	}
}
