package media

import (
	"net"
	"net/netip"
)

// burstHolder is a shared UDP socket that can hold what is written to
// one address and send it at once, in one system call
// (udpburst_linux.go).
type burstHolder interface {
	hold(to netip.AddrPort) bool
	release(to netip.AddrPort)
	writeCounts() UDPWrites
}

// UDPWrites counts the system calls that wrote the datagrams of the
// node's shared UDP port.
type UDPWrites struct {
	Single  uint64 // sendto calls, one datagram each
	Batches uint64 // sendmmsg calls
	Batched uint64 // datagrams the sendmmsg calls sent
}

// udpSockets are the node's shared UDP sockets that hold bursts: none
// with a port per participant or where the socket is written one
// datagram at a time. listen fills it before the first connection.
type udpSockets struct {
	list []burstHolder
}

// add keeps c if it holds bursts, and returns it.
func (s *udpSockets) add(c net.PacketConn) net.PacketConn {
	if h, ok := c.(burstHolder); ok {
		s.list = append(s.list, h)
	}
	return c
}

// UDPWrites counts the system calls that wrote the shared UDP port's
// datagrams so far; all zero with a port per participant or where the
// port is written one datagram at a time.
func (s *SFU) UDPWrites() UDPWrites {
	var t UDPWrites
	for _, h := range s.sockets.list {
		c := h.writeCounts()
		t.Single += c.Single
		t.Batches += c.Batches
		t.Batched += c.Batched
	}
	return t
}
