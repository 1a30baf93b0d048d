package exec

import (
	"context"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
)

func runner(t *testing.T, allow ...any) *Runner {
	t.Helper()
	r, err := New(map[string]any{"allow": allow})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCapturesOutputAndExitCode(t *testing.T) {
	sh, err := osexec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	r := runner(t, "sh")
	// argv[0] given as the full path matches the bare allowed name.
	out, err := r.Run(context.Background(), activities.Action{Name: "hello", Argv: []string{sh, "-c", "echo to-out; echo to-err >&2"}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Detail != "to-out\nto-err\n" || out.ExitCode != 0 {
		t.Fatalf("output %+v, want stdout and stderr together, exit 0", out)
	}

	out, err = r.Run(context.Background(), activities.Action{Argv: []string{"sh", "-c", "echo almost; echo broken >&2; exit 3"}})
	if err == nil || activities.IsPermanent(err) {
		t.Fatalf("exit 3: err = %v, want a retryable error", err)
	}
	if out.ExitCode != 3 || !strings.Contains(err.Error(), "exit code 3") || !strings.Contains(err.Error(), "almost\nbroken") {
		t.Fatalf("exit 3: out %+v err %v; want exit code 3 and the output tail in the error", out, err)
	}
}

func TestRefusesCommandsNotAllowed(t *testing.T) {
	r := runner(t, "true", "/usr/bin/env")
	_, err := r.Run(context.Background(), activities.Action{Argv: []string{"sh", "-c", "echo pwned > /tmp/x"}})
	if !activities.IsPermanent(err) || !strings.Contains(err.Error(), `command "sh"`) || !strings.Contains(err.Error(), "allowed: true, /usr/bin/env") {
		t.Fatalf("err = %v, want a permanent error naming sh and the allow list", err)
	}
	// A copy of an allowed program elsewhere is a different command.
	dir := t.TempDir()
	truePath, err := osexec.LookPath("true")
	if err != nil {
		t.Skip("no true")
	}
	b, _ := os.ReadFile(truePath)
	fake := filepath.Join(dir, "true")
	if err := os.WriteFile(fake, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background(), activities.Action{Argv: []string{fake}}); !activities.IsPermanent(err) {
		t.Fatalf("%s: err = %v, want refused", fake, err)
	}
	if _, err := r.Run(context.Background(), activities.Action{Argv: []string{"no-such-command-drillship"}}); !activities.IsPermanent(err) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing command: err = %v", err)
	}
	if _, err := r.Run(context.Background(), activities.Action{Name: "empty"}); !activities.IsPermanent(err) || !strings.Contains(err.Error(), "argv is required") {
		t.Fatalf("empty argv: err = %v", err)
	}
	if out, err := r.Run(context.Background(), activities.Action{Argv: []string{"true"}}); err != nil || out.ExitCode != 0 {
		t.Fatalf("true: %+v, %v", out, err)
	}
}

func TestTimeoutKillsTheProcessTree(t *testing.T) {
	r := runner(t, "sh")
	start := time.Now()
	// The shell starts a grandchild that holds stdout open; the run must not
	// wait for it.
	out, err := r.Run(context.Background(), activities.Action{Argv: []string{"sh", "-c", "echo started; sleep 30 & wait"}, Params: map[string]string{"timeout": "300ms"}})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), "started") {
		t.Fatalf("err = %v, want a timeout naming 300ms with the output", err)
	}
	if took > 2*time.Second {
		t.Fatalf("took %s, want the timeout to end it", took)
	}
	if out.Detail != "started\n" {
		t.Fatalf("output %q", out.Detail)
	}
	if _, err := r.Run(context.Background(), activities.Action{Argv: []string{"sh"}, Params: map[string]string{"timeout": "soon"}}); !activities.IsPermanent(err) || !strings.Contains(err.Error(), "params.timeout") {
		t.Fatalf("bad timeout: err = %v", err)
	}
}

func TestOutputIsBounded(t *testing.T) {
	r := runner(t, "sh")
	// 100000 lines "x" plus a last marker: only the last 64 KiB are kept.
	out, err := r.Run(context.Background(), activities.Action{Argv: []string{"sh", "-c", "i=0; while [ $i -lt 50000 ]; do echo x; i=$((i+1)); done; echo END"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.Detail, "[") || !strings.Contains(out.Detail, "bytes of earlier output dropped") || !strings.HasSuffix(out.Detail, "x\nEND\n") {
		t.Fatalf("output head %q tail %q", out.Detail[:60], out.Detail[len(out.Detail)-10:])
	}
	if body := out.Detail[strings.IndexByte(out.Detail, '\n')+1:]; len(body) != MaxOutput {
		t.Fatalf("kept %d bytes, want %d", len(body), MaxOutput)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{}, "allow is required"},
		{map[string]any{"allow": []any{"bin/sh"}}, "allow[0]"},
		{map[string]any{"allow": []any{"sh"}, "dir": "rel"}, "dir"},
		{map[string]any{"allow": "sh"}, "allow"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v) = %v, want error with %q", tc.cfg, err, tc.want)
		}
	}
}

// The action's idempotency key reaches the command, the same on every run,
// so that a command can skip work a crashed or failed attempt already did.
// (Before, actions had no key: a retried exec could only do it all again.)
func TestIdempotencyKeyReachesCommand(t *testing.T) {
	if _, err := osexec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	r := runner(t, "sh")
	dir := t.TempDir()
	// A command that does its work once per key: the pattern the key is for.
	script := `mark="$0/$(printf %s "$DRILLSHIP_IDEMPOTENCY_KEY" | tr / _)"
if mkdir "$mark" 2>/dev/null; then echo "did $DRILLSHIP_IDEMPOTENCY_KEY"; else echo "already did $DRILLSHIP_IDEMPOTENCY_KEY"; fi`
	a := activities.Action{Name: "drain", Argv: []string{"sh", "-c", script, dir}, Key: "drill-42/Mitigate: drain east"}
	var got []string
	for range 2 {
		out, err := r.Run(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.TrimSpace(out.Detail))
	}
	want := []string{"did drill-42/Mitigate: drain east", "already did drill-42/Mitigate: drain east"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("runs said %q, want %q", got, want)
	}
	// Without a key (runs from before keys), the variable is not set.
	out, err := r.Run(context.Background(), activities.Action{Argv: []string{"sh", "-c", `echo "key=[${DRILLSHIP_IDEMPOTENCY_KEY-unset}]"`}})
	if err != nil || strings.TrimSpace(out.Detail) != "key=[unset]" {
		t.Fatalf("without a key: %q, %v", out.Detail, err)
	}
}
