package bench

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal kills the child if the bench dies without closing
// its stdin (SIGKILL of the bench).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
