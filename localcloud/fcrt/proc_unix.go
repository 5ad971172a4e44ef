//go:build unix

package fcrt

import (
	"os/exec"
	"syscall"
)

// configureProcess puts the instance in its own process group, so that a kill reaches anything
// the function started, as FC's teardown of an instance does.
func configureProcess(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcess kills the instance's process group.
func killProcess(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		_ = cmd.Process.Kill()
	}
}
