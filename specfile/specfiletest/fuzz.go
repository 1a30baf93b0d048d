// Package specfiletest holds what the spec packages' tests share: the fuzz
// body that every spec format must pass.
package specfiletest

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/drillship/drillship/specfile"
)

// FuzzParse checks that any input either parses into a spec that stays valid
// through a YAML round trip, or is refused with an error that names the file
// and locates every problem. The shipped specs in files seed it, beside
// testdata/fuzz/FuzzParse of the calling package.
func FuzzParse[T any](f *testing.F, files fs.ReadFileFS, parse func(file string, data []byte) (T, error), validate func(T) error) {
	names, err := fs.Glob(files, "*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range names {
		data, err := files.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := parse("fuzz.yaml", data)
		if err != nil {
			checkError(t, err)
			return
		}
		if err := validate(spec); err != nil {
			t.Fatalf("Parse accepted the spec but Validate refuses it: %v", err)
		}
		out, err := yaml.Marshal(spec)
		if err != nil {
			t.Fatalf("marshal parsed spec: %v", err)
		}
		again, err := parse("fuzz.yaml", out)
		if err != nil {
			t.Fatalf("re-parse of the marshalled spec failed: %v\n--- marshalled:\n%s", err, out)
		}
		// The round trip must not change the spec.
		out2, err := yaml.Marshal(again)
		if err != nil {
			t.Fatalf("marshal re-parsed spec: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the spec:\n--- first:\n%s\n--- second:\n%s", out, out2)
		}
	})
}

func checkError(t *testing.T, err error) {
	t.Helper()
	if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
		t.Fatalf("error does not start with the file name: %q", err)
	}
	var es specfile.Errors
	if errors.As(err, &es) {
		for i, e := range es {
			if e.File != "fuzz.yaml" || (e.Field == "" && e.Line <= 0) {
				t.Fatalf("error %d of %d has no field and no line (or names file %q): %q", i+1, len(es), e.File, e.Error())
			}
		}
	}
}
