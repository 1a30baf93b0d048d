package schema_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drillship/drillship/schema"
)

// The bad-spec corpus of the validation tests (test/specs/bad) holds the
// mistakes a newcomer made. The schema rejects every one that is
// structural; the ones listed here need what a schema cannot say (order,
// uniqueness, ranges of durations, what exists in the world, relations
// between fields), and only the parser refuses them.
var beyondSchema = map[string]string{
	"deploy/http-no-version-scope":       "a relation: the canary metric must be narrowed by version",
	"deploy/interval-too-short":          "a duration range",
	"deploy/pause-too-long":              "a duration range",
	"deploy/window-too-long":             "a duration range",
	"deploy/traffic-level-region":        "a relation: a deploy's traffic moves versions",
	"drill/detection-timeout-too-long":   "a duration range",
	"drill/guardrail-for-too-long":       "a duration range",
	"drill/window-too-long":              "a duration range",
	"drill/fault-rate-above-one":         "a number written as text (\"1.5\"): params are text, the parser reads the number",
	"drill/latency-ms-zero":              "a number written as text (\"0\")",
	"drill/fault-region-unknown":         "what exists: the environment's regions",
	"drill/weight-key-unknown":           "what exists: the environment's regions",
	"drill/region-weights-version-level": "a relation: region keys on a version-level target",
	"drill/min-above-max":                "a relation between two values",
	"drill/weights-not-100":              "a sum",
}

func TestCorpusStructuralErrorsRejected(t *testing.T) {
	for _, kind := range schema.Kinds {
		s := compiled(t, kind)
		paths, _ := filepath.Glob(filepath.Join("..", "test", "specs", "bad", kind, "*.yaml"))
		if len(paths) == 0 {
			t.Fatalf("no %s corpus", kind)
		}
		for _, p := range paths {
			name := kind + "/" + strings.TrimSuffix(filepath.Base(p), ".yaml")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			err = validate(s, data)
			why, semantic := beyondSchema[name]
			switch {
			case err == nil && !semantic:
				t.Errorf("%s: the schema accepts it", name)
			case err != nil && semantic:
				t.Errorf("%s: listed as beyond the schema (%s), but the schema rejects it: %v", name, why, err)
			}
		}
	}
}
