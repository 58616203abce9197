package firefoxtest

import (
	"os"
	"syscall"
)

// procAttr starts the browser in a process group of its own, killed with
// the test process even when that dies without running its cleanups (a
// panic).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// kill stops the browser and every process it started.
func kill(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}
