//go:build !linux

package testdeps

import "os/exec"

func setProcAttrs(cmd *exec.Cmd) {}
