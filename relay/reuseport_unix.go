//go:build unix

package relay

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort lets the listener of a TCP allocation and the connections it
// makes to peers share the relayed address (RFC 6062, 5.2).
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
