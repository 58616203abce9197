//go:build linux

package udppoll

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// Connected opens a second socket on s's address, connected to remote,
// in s's loop and handing its datagrams to the handler with s's value.
//
// A datagram sent on a connected socket to its remote address takes the
// route the socket cached at connect instead of a route lookup per
// datagram, and the kernel finds the socket of a datagram from remote by
// an exact match. Datagrams from remote arrive on the connected socket
// from then on; those from anyone else still arrive on s, which the
// kernel prefers for them since the connected socket does not match
// them.
//
// Sockets can share an address only with SO_REUSEPORT set on all of them
// when one binds. The connected sockets keep it; s has it only while
// Connected binds, so that the address stays closed to sockets opened
// later by Listen or by other processes, and the kernel picks s by
// address, without a reuseport group's hashing. A connected socket,
// matching a datagram's source exactly, is chosen before any group
// (a reuseport group never picks a connected socket for another source).
func (s *Socket[T]) Connected(remote netip.AddrPort) (*Socket[T], error) {
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	fd, err := unix.Socket(s.family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("udppoll: %w", os.NewSyscallError("socket", err))
	}
	c := &Socket[T]{fd: fd, v: s.v, family: s.family, loop: s.loop, remote: remote}
	// s.mu is not held past the bind: the loop takes it under its own
	// lock, which add takes.
	s.mu.RLock()
	err = net.ErrClosed
	if !s.closed {
		err = c.share(s)
	}
	s.mu.RUnlock()
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("udppoll: second socket on %s: %w", s.local, err)
	}
	var rsa unix.RawSockaddrInet6
	sa, saLen, ok := toRaw(s.family, remote, &rsa)
	if !ok {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("udppoll: %s is not reachable from an IPv4 socket", remote)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(sa), uintptr(saLen)); errno != 0 {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("udppoll: connect %s to %s: %w", s.local, remote, os.NewSyscallError("connect", errno))
	}
	if err := s.loop.add(c); err != nil {
		return nil, fmt.Errorf("udppoll: connected socket on %s: %w", s.local, err)
	}
	return c, nil
}

// share binds c to s's address, which s holds.
func (c *Socket[T]) share(s *Socket[T]) error {
	if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	defer func() { _ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 0) }()
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return c.bind(s.local, s.v6only)
}

// RemoteAddr returns the address a socket opened by Connected is
// connected to; the zero address for others.
func (s *Socket[T]) RemoteAddr() netip.AddrPort { return s.remote }
