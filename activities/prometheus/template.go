package prometheus

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
)

// A scope value goes into PromQL between quotes: only plain label values,
// so a spec cannot inject PromQL through a version name.
var labelValue = regexp.MustCompile(`^[A-Za-z0-9._+:-]{1,128}$`)

// Expr fills a PromQL template: every {{key}} becomes the scope's value
// (which must be a plain label value) and {{window}} the query's window in
// seconds (default 10s).
func Expr(tmpl string, q activities.Query) (string, error) {
	w := q.Window
	if w <= 0 {
		w = 10 * time.Second
	}
	out := strings.ReplaceAll(tmpl, "{{window}}", strconv.FormatInt(int64(w.Round(time.Second)/time.Second), 10)+"s")
	for k, v := range q.Scope {
		if !labelValue.MatchString(v) {
			return "", fmt.Errorf("scope.%s %q: want a label value (letters, digits, . _ + : -)", k, v)
		}
		out = strings.ReplaceAll(out, "{{"+k+"}}", v)
	}
	if i := strings.Index(out, "{{"); i >= 0 {
		end := strings.Index(out[i:], "}}")
		if end < 0 {
			end = len(out) - i - 2
		}
		return "", fmt.Errorf("expr: %s has no value in the scope (have: %s)", out[i:i+end+2], scopeKeys(q.Scope))
	}
	return out, nil
}

func scopeKeys(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	if len(ks) == 0 {
		return "none"
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}
