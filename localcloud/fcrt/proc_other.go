//go:build !unix

package fcrt

import "os/exec"

// configureProcess does nothing where there are no process groups.
func configureProcess(*exec.Cmd) {}

// killProcess kills the instance's process.
func killProcess(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
