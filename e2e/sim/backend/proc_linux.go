package backend

import (
	"os/exec"
	"syscall"
)

// setProcAttrs makes the kernel kill the child if its parent dies, so a
// demo or test that times out or panics leaves no server running.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
