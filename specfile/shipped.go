package specfile

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Shelf is a set of spec files built into the binary (an embed.FS of
// *.yaml), found by bare name ("web-canary") when no such file exists.
type Shelf struct {
	FS   fs.ReadFileFS
	Dir  string // where they live in the repository, for error messages
	Kind string // "deploy spec", "drill"
}

// Names lists the shipped specs.
func (s Shelf) Names() []string {
	ents, _ := fs.ReadDir(s.FS, ".")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return out
}

// Read returns the content of the file at p, or of the shipped spec named
// p, and the name to use in errors.
func (s Shelf) Read(p string) ([]byte, string, error) {
	data, err := os.ReadFile(p)
	if err == nil {
		return data, p, nil
	}
	if !strings.ContainsAny(p, "/\\") {
		name := strings.TrimSuffix(p, ".yaml") + ".yaml"
		if b, err2 := s.FS.ReadFile(name); err2 == nil {
			return b, path.Join(s.Dir, name), nil
		}
	}
	return nil, p, fmt.Errorf("%s: cannot read %s: %w (shipped: %s)", p, s.Kind, err, strings.Join(s.Names(), ", "))
}
