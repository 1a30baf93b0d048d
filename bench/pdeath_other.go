//go:build !linux

package bench

import "os/exec"

// setParentDeathSignal has no equivalent here; the child still exits when
// its stdin closes.
func setParentDeathSignal(*exec.Cmd) {}
