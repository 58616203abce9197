//go:build !linux

package firefoxtest

import (
	"os"
	"syscall"
)

func procAttr() *syscall.SysProcAttr { return nil }

func kill(p *os.Process) { _ = p.Kill() }
