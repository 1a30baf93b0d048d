package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func writeLog(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for i := 0; i < n; i++ {
		if _, err := Append(path, Record{At: "2026-11-28T22:00:00Z", Key: "k" + string(rune('a'+i)), Action: "approve", Who: "ann", Reason: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func rewrite(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, append(bytes.Join(lines, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestVerify: an intact log verifies; a modified, a deleted and a reordered
// record are each caught, naming the line.
func TestVerify(t *testing.T) {
	path, lines := writeLog(t, 4)
	rep, err := Verify(path)
	if err != nil || !rep.OK() || rep.Records != 4 || rep.Head == "" {
		t.Fatalf("intact log: %+v %v", rep, err)
	}
	cases := []struct {
		name   string
		edit   func([][]byte) [][]byte
		inLine int
		says   string
	}{
		{"modified", func(l [][]byte) [][]byte {
			l[1] = bytes.Replace(l[1], []byte(`"who":"ann"`), []byte(`"who":"eve"`), 1)
			return l
		}, 2, "modified"},
		{"modified with its hash recomputed", func(l [][]byte) [][]byte {
			// Rehashing the edited record moves the break to the next one.
			var r Record
			mustUnmarshal(t, l[1], &r)
			r.Reason = "nothing to see"
			r.Hash = r.digest()
			l[1] = mustMarshal(t, r)
			return l
		}, 3, "does not follow"},
		{"deleted", func(l [][]byte) [][]byte { return append(l[:1:1], l[2:]...) }, 2, "deleted"},
		{"reordered", func(l [][]byte) [][]byte {
			l[1], l[2] = l[2], l[1]
			return l
		}, 2, "reordered"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cp := make([][]byte, len(lines))
			for i := range lines {
				cp[i] = append([]byte(nil), lines[i]...)
			}
			rewrite(t, path, c.edit(cp))
			rep, err := Verify(path)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatalf("%s record not detected", c.name)
			}
			p := rep.Problems[0]
			if p.Line != c.inLine || !strings.Contains(p.Msg, c.says) {
				t.Fatalf("first problem %+v, want line %d saying %q", p, c.inLine, c.says)
			}
		})
	}
}

// TestAppendIdempotentAndConcurrent: a retried append (same key) adds
// nothing; concurrent appends keep one chain.
func TestAppendIdempotentAndConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := Append(path, Record{Key: "deploy/web/v2/break-glass/1", Action: "break-glass", Who: "ann", Reason: "sev1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Append(path, Record{Key: "deploy/web/v2/break-glass/1", Action: "break-glass", Who: "ann", Reason: "sev1"})
	if err != nil || b.Seq != a.Seq || b.Hash != a.Hash {
		t.Fatalf("retried append wrote again: %+v %+v %v", a, b, err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := Append(path, Record{Key: "c" + string(rune('A'+i)), Action: "approve", Who: "bob"}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	rep, err := Verify(path)
	if err != nil || !rep.OK() || rep.Records != 21 {
		t.Fatalf("%+v %v", rep, err)
	}
}
