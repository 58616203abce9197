//go:build !linux

package media

import "net"

// newBatchConn returns c as it is: batched socket I/O is Linux's
// recvmmsg and sendmmsg, and elsewhere the ICE mux reads and writes one
// datagram at a time.
func newBatchConn(c *net.UDPConn) net.PacketConn { return c }
