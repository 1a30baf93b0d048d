package kube

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one control-plane process this package started.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process is reaped
}

// spawn starts argv as the leader of a new session (so that it outlives a
// `lab up` that exits, and its whole group can be killed), output appended
// to logPath. With tied, the kernel kills it when this process dies, as
// test servers must even when the test binary is killed.
func spawn(name string, argv []string, logPath string, tied bool) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kube: %s log: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if tied {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := startCmd(cmd, tied); err != nil {
		return nil, fmt.Errorf("kube: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// The kernel sends Pdeathsig when the *thread* that forked the child
// exits, not the process; Go may end a thread (one a goroutine locked and
// left locked), so tied processes are forked from one thread kept for the
// life of the process.
var (
	forkerOnce sync.Once
	forkReqs   chan forkReq
)

type forkReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startCmd(cmd *exec.Cmd, tied bool) error {
	if !tied {
		return cmd.Start()
	}
	forkerOnce.Do(func() {
		forkReqs = make(chan forkReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives on
			for r := range forkReqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	r := forkReq{cmd: cmd, done: make(chan error, 1)}
	forkReqs <- r
	return <-r.done
}

// running reports whether pid is a live process. A zombie is not: it serves
// nothing, and its parent (perhaps init in a container) reaps it later.
func running(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the parenthesised command name, which may hold
	// spaces or parentheses itself.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return true
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for running(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// terminate sends SIGTERM to pid, waits up to grace, then SIGKILLs its
// process group (each process here leads its own) and waits for it.
func terminate(pid int, grace time.Duration) error {
	if !running(pid) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kube: signal %d: %w", pid, err)
	}
	if waitGone(pid, grace) {
		return nil
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kube: kill %d: %w", pid, err)
		}
	}
	if !waitGone(pid, 10*time.Second) {
		return fmt.Errorf("kube: process %d still running after SIGKILL", pid)
	}
	return nil
}

// stopGrace is how long a component gets to exit on SIGTERM. The API
// server drains for a few seconds; nothing here holds state worth more.
const stopGrace = 5 * time.Second

// StopPIDs stops a cluster's processes from any process (`lab down`),
// given Cluster.PIDs: all but the last (etcd) together, then etcd, so the
// API server does not spend its shutdown retrying a dead store.
func StopPIDs(pids []int) error {
	if len(pids) == 0 {
		return nil
	}
	last := len(pids) - 1
	errs := make(chan error, last)
	for _, pid := range pids[:last] {
		go func() { errs <- terminate(pid, stopGrace) }()
	}
	var all []error
	for range pids[:last] {
		all = append(all, <-errs)
	}
	all = append(all, terminate(pids[last], stopGrace))
	return errors.Join(all...)
}
