// Package report renders a drill's ledger.Record as JSON (the record),
// Markdown (for a retro) and HTML (with an SVG timeline).
package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/drillship/drillship/ledger"
)

// JSON is the complete record.
func JSON(r ledger.Record) ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// WriteDir writes <id>.json, .md and .html into dir and returns the paths.
func WriteDir(dir string, r ledger.Record) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	base := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "-").Replace(r.ID))
	j, err := JSON(r)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{".json": j, ".md": Markdown(r), ".html": HTML(r)}
	var files []string
	for _, ext := range []string{".json", ".md", ".html"} {
		p := base + ext
		if err := os.WriteFile(p, out[ext], 0o644); err != nil {
			return files, err
		}
		files = append(files, p)
	}
	return files, nil
}
