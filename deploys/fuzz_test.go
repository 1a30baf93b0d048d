package deploys

import (
	"testing"

	"github.com/drillship/drillship/specfile/specfiletest"
)

// Run: go test -run '^$' -fuzz=FuzzParse -fuzztime=3m ./deploys/
func FuzzParse(f *testing.F) {
	specfiletest.FuzzParse(f, files,
		func(file string, data []byte) (*Spec, error) { return Parse(file, data, nil) },
		func(s *Spec) error { return s.Validate(nil) })
}
