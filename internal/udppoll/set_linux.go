//go:build linux

package udppoll

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errWouldBlock is a write the socket's full send buffer refused; the
// datagram is lost, as on a congested link.
var errWouldBlock = errors.New("udppoll: send buffer full, datagram dropped")

// Set is a set of UDP sockets served by a fixed number of loops. Its
// methods are safe for concurrent use.
type Set[T any] struct {
	handler Handler[T]
	loops   []*loop[T]
	next    atomic.Uint32
	wg      sync.WaitGroup
	once    sync.Once
}

// loop is one epoll instance and the goroutine that reads its sockets.
type loop[T any] struct {
	set  *Set[T]
	ep   *os.File // watched by Go's poller; readable when a socket is
	epfd int      // ep's descriptor; ep.Fd() would make it blocking

	// mu is held while the loop reads a batch of ready sockets, so that a
	// socket leaves the table, and its descriptor is released, only
	// between batches.
	mu      sync.Mutex
	sockets map[int32]*Socket[T]
	closed  bool
}

// New starts a set with loops goroutines (at least one) that hand every
// datagram to handler.
func New[T any](loops int, handler Handler[T]) (*Set[T], error) {
	s := &Set[T]{handler: handler}
	for range max(loops, 1) {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			s.closeLoops()
			return nil, fmt.Errorf("udppoll: %w", os.NewSyscallError("epoll_create1", err))
		}
		if err := unix.SetNonblock(epfd, true); err != nil {
			_ = unix.Close(epfd)
			s.closeLoops()
			return nil, fmt.Errorf("udppoll: %w", os.NewSyscallError("fcntl", err))
		}
		// A non-blocking descriptor given to os.NewFile joins Go's poller;
		// only then does it take a deadline. Without the poller the loop
		// would never wake.
		ep := os.NewFile(uintptr(epfd), "udppoll")
		s.loops = append(s.loops, &loop[T]{set: s, ep: ep, epfd: epfd, sockets: map[int32]*Socket[T]{}})
		if err := ep.SetReadDeadline(time.Time{}); err != nil {
			s.closeLoops()
			return nil, fmt.Errorf("udppoll: the epoll instance cannot join Go's poller: %w", err)
		}
	}
	for _, l := range s.loops {
		rc, err := l.ep.SyscallConn()
		if err != nil {
			s.closeLoops()
			return nil, fmt.Errorf("udppoll: %w", err)
		}
		s.wg.Go(func() { l.run(rc) })
	}
	return s, nil
}

func (l *loop[T]) run(rc interface {
	Read(func(fd uintptr) bool) error
}) {
	events := make([]unix.EpollEvent, 128)
	b := newBatch()
	out := newOut[T]()
	// Read parks the goroutine in Go's poller whenever the function
	// returns false, and returns once the epoll file is closed.
	_ = rc.Read(func(epfd uintptr) bool {
		for {
			n, err := pollNow(int(epfd), events)
			if err == unix.EINTR {
				continue
			}
			if err != 0 || n == 0 {
				return false
			}
			// A round that read every ready socket dry ends without
			// another epoll_wait, which would find nothing: a datagram
			// arriving from now on makes the epoll file readable again
			// (its wake-up reaches Go's poller even while this goroutine
			// runs), and Read then calls here again at once. Only a full
			// events array or a full batch may leave data behind.
			more := n == len(events)
			l.mu.Lock()
			for _, ev := range events[:n] {
				s := l.sockets[ev.Fd]
				if s == nil {
					continue
				}
				// Level-triggered: a socket with more datagrams than a batch
				// is reported again by the next epoll_wait, so one read per
				// socket and round costs no read that fails with EAGAIN.
				n := s.recv(b)
				more = more || n == batchSize
				for i := range n {
					if m, from, ok := b.datagram(i); ok {
						l.set.handler(s.v, b.bufs[i][:Headroom+m], from, out)
					}
				}
			}
			l.mu.Unlock()
			out.flush()
			if !more {
				return false
			}
		}
	})
}

// pollNow is epoll_wait with a zero timeout. It never blocks, so it skips
// the runtime's system-call bookkeeping (which also wakes the runtime's
// monitor thread), as Go's own poller does for the same call.
func pollNow(epfd int, events []unix.EpollEvent) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(n), errno
}

// Listen opens a socket bound to addr (port 0 picks one) whose datagrams
// go to the set's handler with v.
func (s *Set[T]) Listen(addr netip.AddrPort, v T) (*Socket[T], error) {
	ip := addr.Addr().Unmap()
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("udppoll: %w", os.NewSyscallError("socket", err))
	}
	sock := &Socket[T]{fd: fd, v: v, family: family}
	at := netip.AddrPortFrom(ip, addr.Port())
	if err := sock.bind(at, !at.Addr().IsUnspecified()); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("udppoll: listen %s: %w", addr, err)
	}
	l := s.loops[int(s.next.Add(1))%len(s.loops)]
	sock.loop = l
	if err := l.add(sock); err != nil {
		return nil, fmt.Errorf("udppoll: listen %s: %w", addr, err)
	}
	return sock, nil
}

// add registers sock, open and bound, with the loop; on failure it
// closes the descriptor.
func (l *loop[T]) add(sock *Socket[T]) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = unix.Close(sock.fd)
		return net.ErrClosed
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, sock.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(sock.fd)}); err != nil {
		_ = unix.Close(sock.fd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	l.sockets[int32(sock.fd)] = sock
	return nil
}

// Close stops the loops and closes the sockets still open. Handlers are
// not called once it returns.
func (s *Set[T]) Close() error {
	s.once.Do(s.closeLoops)
	return nil
}

func (s *Set[T]) closeLoops() {
	for _, l := range s.loops {
		// Marked first, so that no socket uses the descriptor number
		// after the epoll file has released it.
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		_ = l.ep.Close() // ends the loop's Read once its batch is done
	}
	s.wg.Wait()
	for _, l := range s.loops {
		l.mu.Lock()
		open := make([]*Socket[T], 0, len(l.sockets))
		for _, sock := range l.sockets {
			open = append(open, sock)
		}
		l.mu.Unlock()
		for _, sock := range open {
			_ = sock.Close()
		}
	}
}

// Socket is one UDP socket of a Set.
type Socket[T any] struct {
	loop   *loop[T]
	fd     int
	v      T
	family int
	local  netip.AddrPort
	v6only bool
	// remote is the address of a socket opened by Connected, in unmapped
	// form; zero for others.
	remote netip.AddrPort

	// Writers hold mu shared, so that Close releases the descriptor only
	// when no write is inside the kernel with it: a socket opened
	// meanwhile could be given the same number.
	mu     sync.RWMutex
	closed bool
	once   sync.Once
}

// bind binds the socket to at; an IPv6 socket takes only IPv6 with
// v6only, IPv4 too without.
func (s *Socket[T]) bind(at netip.AddrPort, v6only bool) error {
	if s.family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(s.fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolInt(v6only)); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
		s.v6only = v6only
	}
	var sa unix.Sockaddr
	if s.family == unix.AF_INET6 {
		sa = &unix.SockaddrInet6{Port: int(at.Port()), Addr: at.Addr().As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(at.Port()), Addr: at.Addr().As4()}
	}
	if err := unix.Bind(s.fd, sa); err != nil {
		return os.NewSyscallError("bind", err)
	}
	got, err := unix.Getsockname(s.fd)
	if err != nil {
		return os.NewSyscallError("getsockname", err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		s.local = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		s.local = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// SetBuffers asks for receive and send buffers of the given sizes in
// bytes; the kernel caps them at net.core.rmem_max and wmem_max.
func (s *Socket[T]) SetBuffers(receive, send int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return net.ErrClosed
	}
	if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receive); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, send); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return nil
}

// LocalAddr returns the address the socket is bound to.
func (s *Socket[T]) LocalAddr() netip.AddrPort { return s.local }

// batchSize is how many datagrams one recvmmsg reads from a socket: the
// TURN port's socket often has several waiting when the loop wakes, a
// relay socket rarely more than one.
const batchSize = 32

// batch is a loop's receive buffers, for one recvmmsg call.
type batch struct {
	msgs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	addrs [batchSize]unix.RawSockaddrAny
	bufs  [batchSize][]byte // Headroom free bytes, then room for MaxDatagram
}

func newBatch() *batch {
	b := &batch{}
	for i := range b.msgs {
		b.bufs[i] = make([]byte, Headroom+MaxDatagram)
		b.iovs[i].Base = &b.bufs[i][Headroom]
		b.iovs[i].SetLen(MaxDatagram)
		b.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.addrs[i]))
		b.msgs[i].Hdr.Iov = &b.iovs[i]
		b.msgs[i].Hdr.SetIovlen(1)
	}
	return b
}

// datagram returns the length and sender of the i-th datagram of the
// last recv; a datagram longer than MaxDatagram was cut short and is
// dropped.
func (b *batch) datagram(i int) (int, netip.AddrPort, bool) {
	if b.msgs[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
		return 0, netip.AddrPort{}, false
	}
	return int(b.msgs[i].Len), fromRaw(&b.addrs[i]), true
}

// recv reads the datagrams waiting on the socket, up to a batch, with one
// recvmmsg; the loop calls it under its lock, so the descriptor is open.
func (s *Socket[T]) recv(b *batch) int {
	for i := range b.msgs {
		b.msgs[i].Hdr.Namelen = uint32(unsafe.Sizeof(b.addrs[i]))
		b.msgs[i].Hdr.Flags = 0
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&b.msgs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}

// WriteToUDPAddrPort sends b to addr without waiting: a datagram the full
// send buffer cannot take is dropped with an error. A socket opened by
// Connected sends to its remote address without naming it, on the route
// it cached.
func (s *Socket[T]) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	var rsa unix.RawSockaddrInet6
	var sa unsafe.Pointer
	var saLen uint32
	if !s.remote.IsValid() || addr.Port() != s.remote.Port() || addr.Addr().Unmap() != s.remote.Addr() {
		var ok bool
		if sa, saLen, ok = toRaw(s.family, addr, &rsa); !ok {
			return 0, fmt.Errorf("udppoll: %s is not reachable from an IPv4 socket", addr)
		}
	}
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	retried := false
	for {
		_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(p), uintptr(len(b)), 0, uintptr(sa), uintptr(saLen))
		switch errno {
		case 0:
			return len(b), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, errWouldBlock
		case unix.ECONNREFUSED:
			// A connected socket reports an ICMP error about an
			// earlier datagram on its next send, which the kernel then
			// did not make; the report is cleared, so send again.
			if s.remote.IsValid() && !retried {
				retried = true
				continue
			}
		}
		return 0, os.NewSyscallError("sendto", errno)
	}
}

// Close stops the socket's datagrams and releases it. The handler is not
// called for it once Close returns.
func (s *Socket[T]) Close() error {
	err := net.ErrClosed
	s.once.Do(func() {
		l := s.loop
		l.mu.Lock()
		delete(l.sockets, int32(s.fd))
		if !l.closed {
			_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
		}
		l.mu.Unlock()
		s.mu.Lock()
		s.closed = true
		err = unix.Close(s.fd)
		s.mu.Unlock()
	})
	return err
}

// toRaw writes addr into rsa in the form family takes. The IPv4 form fits
// in the IPv6 structure, so one stack value serves both.
func toRaw(family int, addr netip.AddrPort, rsa *unix.RawSockaddrInet6) (unsafe.Pointer, uint32, bool) {
	ip := addr.Addr()
	port := (*[2]byte)(unsafe.Pointer(&rsa.Port))
	port[0], port[1] = byte(addr.Port()>>8), byte(addr.Port())
	if family == unix.AF_INET {
		ip = ip.Unmap()
		if !ip.Is4() {
			return nil, 0, false
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		sa4.Family = unix.AF_INET
		sa4.Addr = ip.As4()
		return unsafe.Pointer(sa4), unix.SizeofSockaddrInet4, true
	}
	rsa.Family = unix.AF_INET6
	rsa.Addr = ip.As16()
	return unsafe.Pointer(rsa), unix.SizeofSockaddrInet6, true
}

// fromRaw returns the sender in rsa; an IPv4 sender on an IPv6 socket
// comes back as IPv4, so that one sender has one form.
func fromRaw(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		port := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(port[0])<<8|uint16(port[1]))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		port := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(port[0])<<8|uint16(port[1]))
	}
	return netip.AddrPort{}
}
