package stack

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func greet(ctx workflow.Context, name string) (string, error) {
	return "hello " + name, nil
}

var kindKey = temporal.NewSearchAttributeKeyKeyword("DrillshipKind")

func dial(t *testing.T, s *Stack) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  s.Address(),
		Namespace: s.Namespace(),
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatalf("dial %s: %v", s.Address(), err)
	}
	return c
}

func customAttrs(t *testing.T, c client.Client, ns string) map[string]enums.IndexedValueType {
	t.Helper()
	resp, err := c.OperatorService().ListSearchAttributes(context.Background(),
		&operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		t.Fatalf("list search attributes: %v", err)
	}
	return resp.GetCustomAttributes()
}

func TestStackRunsWorkflowsAndKeepsStateInDBFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db := filepath.Join(t.TempDir(), "temporal.db")
	attrs := map[string]enums.IndexedValueType{
		"DrillshipKind": enums.INDEXED_VALUE_TYPE_KEYWORD,
		"Attempt":       enums.INDEXED_VALUE_TYPE_INT,
	}

	began := time.Now()
	s, err := Start(ctx, Options{Namespace: "drillship", UI: true, DBFile: db, SearchAttributes: attrs})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("started in %s at %s, UI %s", time.Since(began), s.Address(), s.UIURL())
	if s.Namespace() != "drillship" {
		t.Errorf("Namespace() = %q, want drillship", s.Namespace())
	}
	if !strings.HasPrefix(s.Address(), "127.0.0.1:") {
		t.Errorf("Address() = %q, want 127.0.0.1:<port>", s.Address())
	}

	// The UI serves its page.
	resp, err := http.Get(s.UIURL())
	if err != nil {
		t.Fatalf("GET UI: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ToLower(string(body)), "<html") {
		t.Errorf("GET %s = %d, %d bytes; want 200 with an HTML page", s.UIURL(), resp.StatusCode, len(body))
	}

	c := dial(t, s)
	got := customAttrs(t, c, "drillship")
	for name, typ := range attrs {
		if got[name] != typ {
			t.Errorf("search attribute %s = %s, want %s (all: %v)", name, got[name], typ, got)
		}
	}

	w := worker.New(c, "greet", worker.Options{})
	w.RegisterWorkflow(greet)
	if err := w.Start(); err != nil {
		t.Fatalf("worker start: %v", err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    "greet-1",
		TaskQueue:             "greet",
		TypedSearchAttributes: temporal.NewSearchAttributes(kindKey.ValueSet("drill")),
	}, greet, "drill")
	if err != nil {
		t.Fatalf("execute workflow: %v", err)
	}
	var out string
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if out != "hello drill" {
		t.Errorf("workflow result = %q, want %q", out, "hello drill")
	}
	w.Stop()
	c.Close()

	uiAddr := strings.TrimPrefix(s.UIURL(), "http://")
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for _, addr := range []string{s.Address(), uiAddr} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("port %s still bound after Stop: %v", addr, err)
			continue
		}
		l.Close()
	}
	if leaked := ourGoroutines(); leaked != "" {
		t.Errorf("goroutines of package stack left after Stop:\n%s", leaked)
	}

	// Second start on the same file: the first run is still there, the
	// attributes already present are accepted and a new one is added to the
	// existing namespace.
	attrs["Scenario"] = enums.INDEXED_VALUE_TYPE_KEYWORD
	s2, err := Start(ctx, Options{Namespace: "drillship", DBFile: db, SearchAttributes: attrs})
	if err != nil {
		t.Fatalf("second Start on %s: %v", db, err)
	}
	defer s2.Stop()
	if s2.UIURL() != "" {
		t.Errorf("UIURL() = %q without UI, want empty", s2.UIURL())
	}
	c2 := dial(t, s2)
	defer c2.Close()
	got = customAttrs(t, c2, "drillship")
	for name, typ := range attrs {
		if got[name] != typ {
			t.Errorf("after restart: search attribute %s = %s, want %s (all: %v)", name, got[name], typ, got)
		}
	}
	desc, err := c2.DescribeWorkflowExecution(ctx, "greet-1", "")
	if err != nil {
		t.Fatalf("describe first run after restart: %v", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("first run status after restart = %s, want Completed", st)
	}
	out = ""
	if err := c2.GetWorkflow(ctx, "greet-1", "").Get(ctx, &out); err != nil || out != "hello drill" {
		t.Errorf("first run result after restart = %q, %v; want %q", out, err, "hello drill")
	}
	list, err := c2.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: "drillship",
		Query:     `DrillshipKind = "drill"`,
	})
	if err != nil {
		t.Fatalf("list by DrillshipKind: %v", err)
	}
	if n := len(list.GetExecutions()); n != 1 || list.GetExecutions()[0].GetExecution().GetWorkflowId() != "greet-1" {
		t.Errorf("list DrillshipKind=drill found %d executions %v, want greet-1 only", n, list.GetExecutions())
	}

	// A type change of an existing attribute is refused, by name.
	err = RegisterSearchAttributes(ctx, c2, "drillship", map[string]enums.IndexedValueType{"Attempt": enums.INDEXED_VALUE_TYPE_KEYWORD})
	if !errors.Is(err, ErrSearchAttributeType) || !strings.Contains(err.Error(), "Attempt") {
		t.Errorf("re-register Attempt as Keyword: err = %v, want ErrSearchAttributeType naming Attempt", err)
	}
}

func TestStartRefusesBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = Start(context.Background(), Options{Port: port})
	if err == nil || !strings.Contains(err.Error(), "Port") {
		t.Fatalf("Start on busy port %d: err = %v, want an error naming Port", port, err)
	}
	_, err = Start(context.Background(), Options{UI: true, UIPort: port})
	if err == nil || !strings.Contains(err.Error(), "UIPort") {
		t.Fatalf("Start with busy UI port %d: err = %v, want an error naming UIPort", port, err)
	}
}

// ourGoroutines returns the stacks of goroutines, other than the caller,
// running code of this package outside tests.
func ourGoroutines() string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for i, g := range strings.Split(string(buf), "\n\n") {
			if i == 0 {
				continue // the caller
			}
			if strings.Contains(g, "drillship/drillship/stack.") && !strings.Contains(g, "stack.Test") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
