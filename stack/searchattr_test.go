package stack

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"

	"github.com/drillship/drillship/workflows"
)

// A namespace shared with another team that already registered generic
// names (Service as an Int, Phase as a Keyword) takes drillship's attributes
// without a type conflict, and keeps the other team's ones as they were.
func TestDrillshipAttributesBesideAnotherTeams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	other := map[string]enums.IndexedValueType{
		"Service": enums.INDEXED_VALUE_TYPE_INT,
		"Phase":   enums.INDEXED_VALUE_TYPE_KEYWORD,
	}
	s, err := Start(ctx, Options{Namespace: "shared", SearchAttributes: other})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer s.Stop()
	c := dial(t, s)
	defer c.Close()

	// The old unprefixed Service (Keyword) would have been refused here.
	old := map[string]enums.IndexedValueType{"Service": enums.INDEXED_VALUE_TYPE_KEYWORD}
	if err := RegisterSearchAttributes(ctx, c, "shared", old); !errors.Is(err, ErrSearchAttributeType) {
		t.Fatalf("register an unprefixed Service keyword beside an Int one: %v, want ErrSearchAttributeType", err)
	}
	for range 2 { // the second run finds them all present
		if err := RegisterSearchAttributes(ctx, c, "shared", workflows.SearchAttributes()); err != nil {
			t.Fatalf("register drillship's attributes: %v", err)
		}
	}
	got := customAttrs(t, c, "shared")
	for name, typ := range workflows.SearchAttributes() {
		if got[name] != typ {
			t.Errorf("%s = %v, want %v", name, got[name], typ)
		}
	}
	for name, typ := range other {
		if got[name] != typ {
			t.Errorf("the other team's %s = %v, want %v unchanged", name, got[name], typ)
		}
	}
}
