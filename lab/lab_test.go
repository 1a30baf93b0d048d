package lab

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUpAllThenStopFromState(t *testing.T) {
	l := Start(t, Options{})
	ctx := context.Background()

	// Through HAProxy, v1 has weight 100 and v2 weight 0 at start.
	resp, err := http.Get(l.HAProxy.Frontend + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("X-Version"); got != "v1" {
		t.Fatalf("frontend answered from %q (%s), want v1", got, body)
	}

	// HAProxy's own exporter serves metrics.
	resp, err = http.Get("http://" + l.HAProxy.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "haproxy_backend_") {
		t.Fatalf("haproxy exporter: no haproxy_backend_ metrics")
	}

	// The replica streams from the primary.
	if err := waitSQL(ctx, l.Postgres.Nodes[0].DSN, 10*time.Second,
		"SELECT count(*) = 1 FROM pg_stat_replication WHERE application_name = 'pg2' AND state = 'streaming'"); err != nil {
		t.Fatalf("pg2 not streaming: %v", err)
	}
	if ok, err := queryBool(ctx, l.Postgres.Nodes[1].DSN, "SELECT pg_is_in_recovery()"); err != nil || !ok {
		t.Fatalf("pg2 in recovery = %v, %v; want true", ok, err)
	}

	// The state file names it all; Stop from it (as `drillship lab down`
	// would from another process) ends every server.
	st, err := Load(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{st.HAProxy.PID, st.Prometheus.PID, st.Postgres.Nodes[0].PID(), st.Postgres.Nodes[1].PID()}
	for i, pid := range pids {
		if !alive(pid) {
			t.Fatalf("process %d (%d) not running before stop", i, pid)
		}
	}
	root := st.Postgres.Root
	if err := Stop(l.Dir); err != nil {
		t.Fatal(err)
	}
	for i, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d (%d) still running after Stop", i, pid)
		}
	}
	if _, err := os.Stat(filepath.Join(l.Dir, StateFile)); !os.IsNotExist(err) {
		t.Errorf("state file still there: %v", err)
	}
	if st.Postgres.RemoveRoot {
		if _, err := os.Stat(root); !os.IsNotExist(err) {
			t.Errorf("postgres root %s still there: %v", root, err)
		}
	}
	set := l.Settings()
	if set["haproxy"]["socket"] != l.HAProxy.Socket || set["prometheus"]["url"] != l.Prometheus.URL || set["postgres"]["lab"] != l.StatePath() {
		t.Errorf("settings %v do not point at the lab", set)
	}
	if len(l.Summary()) < 6 {
		t.Errorf("summary too short: %q", l.Summary())
	}
}

func TestMissingBinaryNamesPackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := lookBinary(binHAProxy)
	if err == nil || !strings.Contains(err.Error(), `Debian package "haproxy"`) {
		t.Fatalf("err = %v, want it to name the haproxy package", err)
	}
	_, err = lookBinary(binPrometheus)
	if err == nil || !strings.Contains(err.Error(), "apt-get install prometheus") {
		t.Fatalf("err = %v, want it to name the prometheus package", err)
	}
}

func TestServiceErrorRateIsExact(t *testing.T) {
	s, err := startService("v9")
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	s.SetErrorRate(0.1)
	fails := 0
	for i := 0; i < 100; i++ {
		resp, err := http.Get(s.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 500 {
			fails++
		}
	}
	if fails != 10 {
		t.Fatalf("failed %d of 100 at rate 0.1, want 10", fails)
	}
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `drillship_lab_requests_total{code="500",version="v9"} 10`) {
		t.Fatalf("metrics do not count 10 failures:\n%s", b)
	}
}

// TestServersDieWithTheTestProcess starts a lab in a child process (this
// test binary again), kills that process with SIGKILL, and checks that no
// server it started survives.
func TestServersDieWithTheTestProcess(t *testing.T) {
	if os.Getenv("DRILLSHIP_LAB_CHILD") != "" {
		l := Start(t, Options{Dir: os.Getenv("DRILLSHIP_LAB_CHILD")})
		_ = l
		os.Stdout.WriteString("UP\n")
		time.Sleep(time.Minute)
		return
	}
	Require(t)
	dir, err := os.MkdirTemp("", "dslab-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cmd := exec.Command(os.Args[0], "-test.run=^TestServersDieWithTheTestProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "DRILLSHIP_LAB_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	up := false
	for sc.Scan() {
		if sc.Text() == "UP" {
			up = true
			break
		}
	}
	if !up {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("child lab did not come up")
	}
	st, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{st.HAProxy.PID, st.Prometheus.PID, st.Postgres.Nodes[0].PID(), st.Postgres.Nodes[1].PID()}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	for i, pid := range pids {
		if pid == 0 || !waitDead(pid, 10*time.Second) {
			t.Errorf("server %d (pid %d) outlived its killed parent", i, pid)
		}
	}
	// What a crashed run leaves behind is files; Stop clears them.
	if err := Stop(dir); err != nil {
		t.Fatalf("stop after crash: %v", err)
	}
}
