package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/workflows"
)

// `drillship dev --no-worker` runs the server and the local environment but
// no worker, and prints the exact command of one. Worker processes started
// from it run a deploy; the first is killed with SIGKILL mid-deploy and a
// second one finishes it.
func TestDevNoWorkerWithWorkerProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drillship and runs a deploy across a worker kill")
	}
	bin := filepath.Join(t.TempDir(), "drillship")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/drillship/drillship").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dev := exec.Command(bin, "dev", "--no-worker", "--port", "0", "--ui-port", "0", "--rps", "100")
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	devDone := make(chan error, 1)
	go func() { devDone <- dev.Wait() }()
	t.Cleanup(func() {
		_ = dev.Process.Signal(syscall.SIGKILL) // a no-op once it has exited
		<-devDone
	})

	// Read dev's banner: the exports and the worker command.
	var addr, localURL string
	var workerArgs []string
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var banner []string
	deadline := time.After(2 * time.Minute)
	for addr == "" || workerArgs == nil {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dev exited before printing its banner:\n%s", strings.Join(banner, "\n"))
			}
			banner = append(banner, l)
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "export":
				addr = strings.TrimPrefix(f[1], "TEMPORAL_ADDRESS=")
				localURL = strings.TrimPrefix(f[2], "DRILLSHIP_LOCAL_ENV=")
			case len(f) > 1 && f[1] == "worker" && strings.HasSuffix(f[0], "drillship"):
				workerArgs = f
			}
		case <-deadline:
			t.Fatalf("no banner in 2 minutes:\n%s", strings.Join(banner, "\n"))
		}
	}
	go func() { // keep the pipe drained
		for range lines {
		}
	}()
	if workerArgs[0] != bin || !slices.Contains(workerArgs, addr) || !slices.Contains(workerArgs, localURL) {
		t.Fatalf("worker command %q: want %s with --address %s --local-env %s", workerArgs, bin, addr, localURL)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl, err := client.Dial(client.Options{HostPort: addr, Namespace: workerArgs[slices.Index(workerArgs, "--namespace")+1],
		Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pollers := func() int {
		t.Helper()
		resp, err := cl.DescribeTaskQueue(ctx, workflows.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.GetPollers())
	}
	if n := pollers(); n != 0 {
		t.Fatalf("dev --no-worker: %d pollers on %s, want none", n, workflows.TaskQueue)
	}
	startWorker := func() *exec.Cmd {
		t.Helper()
		w := exec.Command(workerArgs[0], workerArgs[1:]...)
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Process.Signal(syscall.SIGKILL); _ = w.Wait() })
		return w
	}
	state := func() localenv.State {
		t.Helper()
		var st localenv.State
		resp, err := http.Get(localURL + "/api/state")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	until := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	first := startWorker()
	until("the worker process to poll", func() bool { return pollers() > 0 })
	code, out, stderr := runCLI("deploy", "start", "web-canary", "--version", "v2", "--address", addr, "--local-env", localURL)
	if code != 0 {
		t.Fatalf("deploy start: exit %d\n%s\n%s", code, out, stderr)
	}
	until("v2 to take traffic", func() bool { return state().VersionWeights["v2"] > 0 })
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	startWorker()

	var res workflows.DeployResult
	if err := cl.GetWorkflow(ctx, workflows.DeployID("web", "v2"), "").Get(ctx, &res); err != nil {
		t.Fatalf("deploy after the worker kill: %v", err)
	}
	if st := state(); res.Outcome != workflows.OutcomePromoted || st.Stable != "v2" || st.VersionWeights["v2"] != 100 {
		t.Fatalf("outcome %s, stable %s, weights %v; want promoted, v2 at 100", res.Outcome, st.Stable, st.VersionWeights)
	}

	// Ctrl-C stops dev cleanly.
	_ = dev.Process.Signal(syscall.SIGINT)
	select {
	case err := <-devDone:
		devDone <- err // for the cleanup
		if err != nil {
			t.Fatalf("dev after SIGINT: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev still running 30 s after SIGINT")
	}
}
