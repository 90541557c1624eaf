//go:build !linux

package backend

import "os/exec"

func setProcAttrs(cmd *exec.Cmd) {}
