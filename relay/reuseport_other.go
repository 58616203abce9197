//go:build !unix

package relay

import "syscall"

// reusePort does nothing where the system has no SO_REUSEPORT; a TCP
// allocation's Connect then fails to bind its relayed port.
func reusePort(_, _ string, _ syscall.RawConn) error { return nil }
