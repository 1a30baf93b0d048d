package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/bench/noop"
	"github.com/drillship/drillship/stack"
	"github.com/drillship/drillship/worker"
	"github.com/drillship/drillship/workflows"
)

// The fleet runs the server and the worker as processes of their own so that
// each one's peak RSS is its own. They are the drillship binary run as
// `drillship bench serve` and `drillship bench worker --address A` (hidden
// commands that call Serve and Work). Each exits when its standard input
// closes, so that a bench that dies takes them with it.

// Serve runs the embedded Temporal server, writes "address HOST:PORT" to
// out, and stops it when in reaches EOF or ctx ends.
func Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	st, err := stack.Start(ctx, stack.Options{SearchAttributes: workflows.SearchAttributes()})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "address %s\n", st.Address())
	waitEOF(ctx, in)
	return st.Stop()
}

// Work runs a drillship worker against address with the real workflows and
// activities over a registry of only the bench no-op provider, writes
// "ready" to out once it polls, and stops when in reaches EOF or ctx ends.
func Work(ctx context.Context, address string, in io.Reader, out io.Writer) error {
	cl, err := client.DialContext(ctx, client.Options{HostPort: address, Logger: sdklog.NewStructuredLogger(quiet)})
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	defer cl.Close()
	w, _ := worker.New(cl, activities.NewRegistry(noop.Provider()), quiet, worker.Options{})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()
	fmt.Fprintln(out, "ready")
	waitEOF(ctx, in)
	return nil
}

func waitEOF(ctx context.Context, in io.Reader) {
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, in)
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	}
}

// child is a process started by the bench.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	tail  *tailBuffer
	done  chan struct{}
	err   error // set when done is closed
}

func spawn(ctx context.Context, name, exe string, args ...string) (*child, error) {
	if exe == "" {
		return nil, errors.New("no drillship binary to run the " + name + " process (Options.Exe is empty)")
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	setParentDeathSignal(cmd)
	c := &child{name: name, cmd: cmd, lines: make(chan string, 16), tail: &tailBuffer{max: 4096}, done: make(chan struct{})}
	cmd.Stderr = c.tail
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s process: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default: // nobody listens any more
			}
		}
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// waitLine returns the rest of the first output line starting with prefix.
func (c *child) waitLine(prefix string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l := <-c.lines:
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(rest), nil
			}
		case <-c.done:
			return "", fmt.Errorf("%s process exited before saying %q: %v: %s", c.name, prefix, c.err, c.tail)
		case <-t.C:
			return "", fmt.Errorf("%s process did not say %q within %s: %s", c.name, prefix, timeout, c.tail)
		}
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop closes the child's stdin so it shuts down cleanly, and kills it if it
// has not exited within grace.
func (c *child) stop(grace time.Duration) {
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
