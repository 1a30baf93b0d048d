// Package audit is drillship's permanent, tamper-evident audit log: JSON
// lines, each carrying the SHA-256 of the line before it and of itself, so
// that an edited, deleted or reordered record breaks the chain. It lives
// outside Temporal's retention; the workflow's own record keeps a copy.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
)

// EnvFile names the log when no flag or policy does.
const EnvFile = "DRILLSHIP_AUDIT_LOG"

// DefaultFile is the log's name when nothing names one.
const DefaultFile = "drillship-audit.jsonl"

// Genesis is the "previous hash" of the first record.
var Genesis = strings.Repeat("0", 64)

// Record is one entry. Key makes an append idempotent: a retried append
// of the same key adds nothing.
type Record struct {
	Seq      int64  `json:"seq"`
	At       string `json:"at"` // RFC 3339, UTC
	Key      string `json:"key"`
	Action   string `json:"action"` // break-glass, approve, hotfix, override, ...
	Who      string `json:"who"`
	Reason   string `json:"reason,omitempty"`
	Incident string `json:"incident,omitempty"`
	Workflow string `json:"workflow,omitempty"`
	Service  string `json:"service,omitempty"`
	Version  string `json:"version,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Prev     string `json:"prev"`
	Hash     string `json:"hash"`
}

// digest is the SHA-256 of the record with Hash empty.
func (r Record) digest() string {
	r.Hash = ""
	b, _ := json.Marshal(r)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Path picks the log: the flag, else DRILLSHIP_AUDIT_LOG, else the
// default file in the working directory.
func Path(flag string) string {
	if flag != "" {
		return flag
	}
	if v := os.Getenv(EnvFile); v != "" {
		return v
	}
	return DefaultFile
}

var mu sync.Mutex // appends within one process; flock across processes

// Append adds r to the log at path (created when absent) and returns it as
// written. A record whose Key is already in the log is not added again:
// the one there is returned.
func Append(path string, r Record) (Record, error) {
	mu.Lock()
	defer mu.Unlock()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return Record{}, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return Record{}, fmt.Errorf("audit: lock %s: %w", path, err)
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Record{}, err
	}
	prev, seq := Genesis, int64(0)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var old Record
		if err := json.Unmarshal(line, &old); err != nil {
			// Appending after a damaged record would hide it behind a
			// valid-looking tail.
			return Record{}, fmt.Errorf("audit: %s line %d is not a record; run `drillship audit verify --file %s`", path, seq+1, path)
		}
		if r.Key != "" && old.Key == r.Key {
			return old, nil
		}
		prev, seq = old.Hash, old.Seq
	}
	if err := sc.Err(); err != nil {
		return Record{}, fmt.Errorf("audit: read %s: %w", path, err)
	}
	r.Seq, r.Prev, r.Hash = seq+1, prev, ""
	r.Hash = r.digest()
	b, err := json.Marshal(r)
	if err != nil {
		return Record{}, err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return Record{}, fmt.Errorf("audit: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return Record{}, fmt.Errorf("audit: sync %s: %w", path, err)
	}
	return r, nil
}

// Problem is one break in the chain.
type Problem struct {
	Line int    `json:"line"`
	Msg  string `json:"msg"`
}

// Report is what Verify found.
type Report struct {
	File     string    `json:"file"`
	Records  int       `json:"records"`
	Head     string    `json:"head,omitempty"` // hash of the last record: keep it elsewhere to detect a cut tail
	Problems []Problem `json:"problems,omitempty"`
}

// OK says the chain is whole.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Verify reads the log and checks every record: its own hash (an edit),
// the previous record's hash (a deletion or a reordering) and its sequence
// number. A cut tail leaves a valid chain: compare Head or Records with a
// copy kept elsewhere.
func Verify(path string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	return VerifyReader(path, f)
}

// VerifyReader is Verify over r.
func VerifyReader(name string, rd io.Reader) (Report, error) {
	rep := Report{File: name}
	prev, seq := Genesis, int64(0)
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r Record
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			rep.Problems = append(rep.Problems, Problem{n, "not a record: " + err.Error()})
			prev, seq = "", seq+1
			continue
		}
		rep.Records++
		if got := r.digest(); got != r.Hash {
			rep.Problems = append(rep.Problems, Problem{n, fmt.Sprintf("record %d was modified: its content hashes to %.12s…, it says %.12s…", r.Seq, got, r.Hash)})
		}
		if r.Prev != prev && prev != "" {
			rep.Problems = append(rep.Problems, Problem{n, fmt.Sprintf("record %d does not follow the record before it (prev %.12s…, the line before hashes to %.12s…): a record before it was deleted, reordered or modified", r.Seq, r.Prev, prev)})
		}
		if r.Seq != seq+1 {
			rep.Problems = append(rep.Problems, Problem{n, fmt.Sprintf("record %d where %d was expected: records deleted or reordered", r.Seq, seq+1)})
		}
		prev, seq = r.Hash, r.Seq
		rep.Head = r.Hash
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("audit: read %s: %w", name, err)
	}
	return rep, nil
}

// ErrBroken is returned by callers that turn a report into an error.
var ErrBroken = errors.New("audit log chain broken")
