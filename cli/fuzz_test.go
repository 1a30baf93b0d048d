package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/cli"
)

// deadAddress refuses connections at once, so that no fuzzed command can
// reach a Temporal server.
const deadAddress = "127.0.0.1:1"

// FuzzArgs runs the CLI on fuzzed argument lists (NUL-separated) and checks
// that it never panics, that the exit code is one of the documented ones,
// and that a usage error (2) says what is wrong.
func FuzzArgs(f *testing.F) {
	// Commands that do not set --address must not fall back to a server
	// someone runs on the default port.
	f.Setenv("TEMPORAL_ADDRESS", deadAddress)
	f.Setenv("DRILLSHIP_LOCAL_ENV", "")
	f.Setenv("DRILLSHIP_REPORT_DIR", "")
	seeds := [][]string{
		{"deploy", "start", "web-canary", "--version", "v2", "--address", deadAddress},
		{"deploy", "start", "web-canary", "--version", "v2", "--wait", "--address", deadAddress},
		{"deploy", "start", "web-canary", "--address", deadAddress},
		{"deploy", "start", "../deploys/web-canary.yaml", "--version", "v2", "--commit-time", "2026-01-02T03:04:05Z", "--address", deadAddress},
		{"deploy", "start", "nope.yaml", "--version", "v2"},
		{"deploy", "status", "deploy/web/v2", "--address", deadAddress, "-o", "json"},
		{"deploy", "abort", "deploy/web/v2", "--reason", "bad canary", "--who", "alice", "--address", deadAddress},
		{"deploy", "break-glass", "deploy/web/v2", "--reason", "", "--address", deadAddress},
		{"deploy", "list", "--service", "web", "--output", "yaml"},
		{"deploy", "stats", "--window", "72h"},
		{"drill", "validate", "region-failover"},
		{"drill", "validate", "../drills/region-failover.yaml", "missing.yaml"},
		{"drill", "run", "region-failover", "--mode", "gameday", "--wait", "--address", deadAddress},
		{"drill", "run", "region-failover", "--mode", "bogus"},
		{"drill", "ack", "drill/region-failover/2026-01-01T00-00-00Z", "--address", deadAddress},
		{"drill", "report", "drill/x", "--format", "pdf"},
		{"drill", "schedule", "create", "region-failover", "--calendar", "first tuesday 10:00 America/New_York"},
		{"drill", "schedule", "create", "region-failover", "--calendar", "every blue moon"},
		{"drill", "schedule", "list", "-o", "json"},
		{"--log-level", "debug", "deploy", "list"},
		{"worker", "--max-activities", "-1", "--address", deadAddress},
		{"--help"},
		{"deploy"},
		{"nonsense", "--flag"},
		{"deploy", "start", "--version=v2", "--", "web-canary"},
	}
	for _, s := range seeds {
		f.Add(strings.Join(s, "\x00"))
	}
	f.Fuzz(func(t *testing.T, joined string) {
		args, ok := sanitize(strings.Split(joined, "\x00"))
		if !ok {
			t.Skip("argument list would start a server, reach a real address or read a device")
		}
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		code := cli.Run(ctx, append([]string{"drillship"}, args...), &stdout, &stderr)
		switch code {
		case 0, 1, 2, 3:
		default:
			t.Fatalf("args %q: exit code %d, want 0..3\nstderr: %s", args, code, stderr.String())
		}
		if code == cli.ExitUsage && !saysWhatIsWrong(stderr.String()) {
			t.Fatalf("args %q: exit code 2 without a message saying what is wrong; stderr %q", args, stderr.String())
		}
	})
}

// saysWhatIsWrong reports whether stderr holds a "drillship: <message>"
// line with some words in it.
func saysWhatIsWrong(stderr string) bool {
	for _, line := range strings.Split(stderr, "\n") {
		if msg, ok := strings.CutPrefix(line, "drillship: "); ok && len(strings.TrimSpace(msg)) >= 5 {
			return true
		}
	}
	return false
}

// sanitize refuses argument lists that would start long-running servers
// (dev, demo, codec-server), point the client anywhere but deadAddress, or
// read from devices and kernel files that never end.
func sanitize(args []string) ([]string, bool) {
	for i, a := range args {
		switch a {
		case "dev", "demo", "codec-server":
			return nil, false
		}
		for _, p := range []string{"/dev", "/proc", "/sys"} {
			if strings.Contains(a, p) {
				return nil, false
			}
		}
		if strings.Contains(a, "address") || strings.Contains(a, "local-env") {
			if a == "--address" && i+1 < len(args) && args[i+1] == deadAddress {
				continue
			}
			if a == "--address="+deadAddress {
				continue
			}
			return nil, false
		}
	}
	return args, true
}
