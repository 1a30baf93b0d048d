package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// binary names a program the lab runs and the Debian package that ships it,
// so that a missing one is reported with the fix.
type binary struct {
	name, pkg string
}

var (
	binHAProxy      = binary{"haproxy", "haproxy"}
	binPrometheus   = binary{"prometheus", "prometheus"}
	binInitdb       = binary{"initdb", "postgresql"}
	binPostgres     = binary{"postgres", "postgresql"}
	binPgBasebackup = binary{"pg_basebackup", "postgresql"}
)

// pgBinGlob is where Debian keeps the server binaries, off PATH.
const pgBinGlob = "/usr/lib/postgresql/*/bin"

// lookBinary finds b on PATH, then (for PostgreSQL) in the newest
// /usr/lib/postgresql/<version>/bin.
func lookBinary(b binary) (string, error) {
	if p, err := exec.LookPath(b.name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob(pgBinGlob)
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		p := filepath.Join(d, b.name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("lab: %s not found on PATH or in %s: install the Debian package %q (apt-get install %s)", b.name, pgBinGlob, b.pkg, b.pkg)
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// freePort asks the kernel for a free loopback port. Another process can
// take it before we bind it; the lab starts right after, so this is rare.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("lab: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// daemon is a long-running server the lab started in this process.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startDaemon starts argv in its own session so that it outlives a `lab up`
// that exits (unless tied: then it dies with this process, as test servers
// must even when the test binary is killed), with output appended to logPath.
func startDaemon(argv []string, logPath string, tied bool) (*daemon, error) {
	return startDaemonEnv(argv, logPath, tied, nil)
}

// startDaemonEnv is startDaemon with env added to this process's environment.
func startDaemonEnv(argv []string, logPath string, tied bool, env []string) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: log file: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if tied {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", argv[0], err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(d.done) }()
	return d, nil
}

// alive reports whether pid runs. A zombie counts as dead: its parent (maybe
// init in a container) has not reaped it yet, but it serves nothing.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the command name in parentheses, which may itself
	// hold spaces or parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return true
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

// waitDead polls until pid is gone or d passes.
func waitDead(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// stopPID asks pid (and its process group, when it leads one) to stop with
// sig, and kills the group if it is still there after grace.
func stopPID(pid int, sig syscall.Signal, grace time.Duration) error {
	if !alive(pid) {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("lab: signal %d: %w", pid, err)
	}
	if waitDead(pid, grace) {
		return nil
	}
	return killGroup(pid)
}

// killGroup sends SIGKILL to pid's process group (the lab starts every
// server as a session leader, so that takes its children too) and waits.
func killGroup(pid int) error {
	if !alive(pid) {
		return nil
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("lab: kill %d: %w", pid, err)
		}
	}
	if !waitDead(pid, 10*time.Second) {
		return fmt.Errorf("lab: process %d still running after SIGKILL", pid)
	}
	return nil
}

// Account is the account PostgreSQL runs under: initdb and postgres refuse
// root, so as root the lab uses the `postgres` system user.
type Account struct {
	Name string `json:"name"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
}

func pgAccount() (*Account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("lab: running as root needs the `postgres` system user (apt-get install postgresql): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &Account{Name: u.Username, UID: uid, GID: gid}, nil
}

// command builds argv to run as a (nil: as ourselves) in dir.
func (a *Account) command(dir string, argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if a != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(a.UID), Gid: uint32(a.GID)}
		cmd.Env = append(os.Environ(), "HOME="+dir, "USER="+a.Name, "LOGNAME="+a.Name)
	}
	return cmd
}

func (a *Account) chown(path string) error {
	if a == nil {
		return nil
	}
	return os.Chown(path, a.UID, a.GID)
}

// run runs argv as a and returns its combined output in the error.
func (a *Account) run(dir string, argv ...string) error {
	out, err := a.command(dir, argv...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: %s: %w: %s", filepath.Base(argv[0]), err, strings.TrimSpace(tail(string(out), 2000)))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
