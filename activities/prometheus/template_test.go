package prometheus

import (
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
)

func TestExprFillsScope(t *testing.T) {
	q := activities.Query{Scope: map[string]string{"version": "v2"}, Window: 30 * time.Second}
	got, err := Expr(`sum(rate(x{version="{{version}}",code=~"5.."}[{{window}}]))`, q)
	if err != nil || got != `sum(rate(x{version="v2",code=~"5.."}[30s]))` {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := Expr(`x{version="{{version}}"}`, activities.Query{Scope: map[string]string{"version": `v2"} or vector(1) or x{a="`}}); err == nil || !strings.Contains(err.Error(), "label value") {
		t.Fatalf("PromQL injection through a scope value must be refused: %v", err)
	}
	if p, err := parse(activities.Query{Expr: `up{region="{{region}}"}`, Scope: map[string]string{"region": "east"}}); err != nil || p.expr != `up{region="east"}` {
		t.Fatalf("parse fills the template: %+v %v", p, err)
	}
}
