// Package workflows holds drillship's Temporal workflows: Deploy, Drill and
// Failover. They are deterministic: every effect goes through an activity,
// and the rules (verdicts, scoring) are plain functions in other packages.
package workflows

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Task queue the worker polls.
const TaskQueue = "drillship"

// Custom search attributes: the UI and `deploy list`/`drill list` filter on
// them. Every name carries the Drillship prefix because a namespace is shared
// with other teams' workflows, and a generic name such as Service may already
// be registered there (perhaps with another type) or mean something else.
var (
	AttrKind        = temporal.NewSearchAttributeKeyKeyword("DrillshipKind") // deploy | drill
	AttrService     = temporal.NewSearchAttributeKeyKeyword("DrillshipService")
	AttrVersion     = temporal.NewSearchAttributeKeyKeyword("DrillshipVersion")
	AttrEnvironment = temporal.NewSearchAttributeKeyKeyword("DrillshipEnvironment")
	AttrScenario    = temporal.NewSearchAttributeKeyKeyword("DrillshipScenario")
	AttrOutcome     = temporal.NewSearchAttributeKeyKeyword("DrillshipOutcome")
	AttrStep        = temporal.NewSearchAttributeKeyInt64("DrillshipStep")
	AttrPhase       = temporal.NewSearchAttributeKeyKeyword("DrillshipPhase")
)

// SearchAttributes lists the custom attributes to register on a namespace.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		AttrKind.GetName():        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrService.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrVersion.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrEnvironment.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrScenario.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrOutcome.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrStep.GetName():        enumspb.INDEXED_VALUE_TYPE_INT,
		AttrPhase.GetName():       enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
}
