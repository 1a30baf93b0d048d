// Package exec is the exec runner provider: it runs a command of an action
// (Action.Argv) with a timeout, but only commands the settings allow, and
// reports their output. Commands get the action's idempotency key in env
// DRILLSHIP_IDEMPOTENCY_KEY, since a retried action runs them again.
package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/drillship/drillship/activities"
)

// Name is the provider name in specs.
const Name = "exec"

// Config is the provider's settings.
//
//	allow: [/usr/lib/postgresql/15/bin/pg_ctl, curl]  # required; names are looked up on PATH
//	dir: /srv/app                                     # working directory, optional
type Config struct {
	Allow []string `json:"allow"`
	Dir   string   `json:"dir,omitempty"`
}

// Environment a command gets when its action has a key.
const (
	EnvKey     = "DRILLSHIP_IDEMPOTENCY_KEY" // Action.Key: "<drill id>/<step>", the same on every attempt
	EnvAttempt = "DRILLSHIP_ATTEMPT"         // 1 on the first attempt, 2 on the first retry, ...
)

// Defaults for a run.
const (
	DefaultTimeout = 30 * time.Second
	MaxOutput      = 64 << 10 // bytes of stdout+stderr kept (the last ones)
	errTail        = 2 << 10  // bytes of output quoted in an error
)

// Provider returns the exec provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:    Name,
		Declare: Declare,
		Runner:  func(cfg map[string]any) (activities.Runner, error) { return New(cfg) },
	}
}

// Runner runs allowed commands.
type Runner struct {
	allow []string
	dir   string
}

// New validates the settings; it does no I/O (allowed names are looked up
// on PATH when a command runs).
func New(cfg map[string]any) (*Runner, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	if len(c.Allow) == 0 {
		return nil, errors.New("config: allow is required: list the commands (paths or names on PATH) actions may run")
	}
	for i, a := range c.Allow {
		if a == "" || (strings.ContainsRune(a, '/') && !filepath.IsAbs(a)) {
			return nil, fmt.Errorf("config: allow[%d] %q: want an absolute path or a bare command name", i, a)
		}
	}
	if c.Dir != "" && !filepath.IsAbs(c.Dir) {
		return nil, fmt.Errorf("config: dir %q: want an absolute path", c.Dir)
	}
	return &Runner{allow: c.Allow, dir: c.Dir}, nil
}

// resolve returns the program argv0 names if it is allowed: both argv0 and
// the allowed entries are resolved with LookPath and compared exactly, so
// "curl" and "/usr/bin/curl" are the same command, "/tmp/curl" is not.
func (r *Runner) resolve(argv0 string) (string, error) {
	path, err := exec.LookPath(argv0)
	if err != nil {
		path = "" // not found: still refused below with the allow list, or reported
	}
	for _, a := range r.allow {
		ap, err := exec.LookPath(a)
		if err != nil {
			continue
		}
		if path != "" && filepath.Clean(ap) == filepath.Clean(path) {
			return path, nil
		}
	}
	if path == "" {
		return "", activities.Permanent(fmt.Errorf("exec: command %q not found (allowed: %s)", argv0, strings.Join(r.allow, ", ")))
	}
	return "", activities.Permanent(fmt.Errorf("exec: command %q (%s) is not allowed (allowed: %s)", argv0, path, strings.Join(r.allow, ", ")))
}

// Run runs a.Argv with Params["timeout"] (default 30s) and, when a.Key is
// set, env DRILLSHIP_IDEMPOTENCY_KEY (and DRILLSHIP_ATTEMPT). A command is
// only as safe to retry as it makes itself: drillship retries actions after
// crashes and errors, and the key is how the command can tell. The output is the
// last 64 KiB of stdout and stderr together. A non-zero exit is an error
// with the exit code and the end of the output; the Output is filled in
// either way.
func (r *Runner) Run(ctx context.Context, a activities.Action) (activities.Output, error) {
	if len(a.Argv) == 0 || a.Argv[0] == "" {
		return activities.Output{}, activities.Permanent(fmt.Errorf("exec: action %q: argv is required", a.Name))
	}
	timeout := DefaultTimeout
	for k, v := range a.Params {
		switch k {
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return activities.Output{}, activities.Permanent(fmt.Errorf("exec: action %q: params.timeout %q: want a positive duration such as 30s", a.Name, v))
			}
			timeout = d
		default:
			return activities.Output{}, activities.Permanent(fmt.Errorf("exec: action %q: params.%s: unknown (allowed: timeout)", a.Name, k))
		}
	}
	path, err := r.resolve(a.Argv[0])
	if err != nil {
		return activities.Output{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &tailBuffer{max: MaxOutput}
	cmd := exec.CommandContext(ctx, path, a.Argv[1:]...)
	cmd.Dir = r.dir
	if a.Key != "" {
		// The same key on every attempt: a command that is not idempotent
		// by nature records it when done and skips the work on a retry.
		cmd.Env = append(os.Environ(), EnvKey+"="+a.Key)
		if activity.IsActivity(ctx) {
			cmd.Env = append(cmd.Env, EnvAttempt+"="+strconv.Itoa(int(activity.GetInfo(ctx).Attempt)))
		}
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: on timeout the whole tree goes, not just the
	// shell, and a grandchild holding the pipes cannot hang the run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	err = cmd.Run()
	o := activities.Output{Detail: out.String()}
	if cmd.ProcessState != nil {
		o.ExitCode = cmd.ProcessState.ExitCode()
	}
	switch {
	case err == nil:
		return o, nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return o, fmt.Errorf("exec: %s: timed out after %s (killed); output ends: %s", a.Argv[0], timeout, tailOf(o.Detail))
	case ctx.Err() != nil:
		return o, fmt.Errorf("exec: %s: %w", a.Argv[0], ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return o, fmt.Errorf("exec: %s: exit code %d after %s; output ends: %s", a.Argv[0], o.ExitCode, time.Since(start).Round(time.Millisecond), tailOf(o.Detail))
	}
	return o, fmt.Errorf("exec: %s: %w", a.Argv[0], err)
}

func tailOf(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > errTail {
		s = "..." + s[len(s)-errTail:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}

// tailBuffer keeps the last max bytes written to it and counts the rest.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.dropped += int64(over)
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return fmt.Sprintf("[%d bytes of earlier output dropped]\n%s", b.dropped, b.buf)
	}
	return string(b.buf)
}
