//go:build linux

package media

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batches on the shared UDP port. A datagram of WebRTC media is at most
// some 1,200 bytes (pion and browsers keep under a 1,280-byte path MTU);
// a longer one is read truncated, which SRTP then rejects, as it would
// reject anything else that is not its own.
const (
	batchSize = 32            // datagrams per recvmmsg, or queued for a sendmmsg
	batchSlot = 2048          // bytes kept for each
	sendMax   = 2 * batchSize // datagrams per sendmmsg: the queue and a burst (udpburst_linux.go)
)

// batchConn is the node's shared UDP socket, read and written in
// batches: one recvmmsg takes every datagram waiting, up to batchSize,
// and ReadFromAddrPort hands them to the ICE mux's one reader one at a
// time; and a writer that finds another in the middle of a write leaves
// its datagram in a queue that the other sends, all of it in one
// sendmmsg, before it returns. Nothing waits for a batch to fill: a
// datagram is read as soon as it arrives and sent at once by whoever is
// not already writing, so a batch is whatever queued in the meantime,
// and the busier the port the fewer system calls per datagram.
//
// pion's ICE mux detects ReadFromAddrPort and WriteToAddrPort and uses
// them instead of ReadFrom and WriteTo, without allocating an address
// per datagram.
type batchConn struct {
	*net.UDPConn
	raw  syscall.RawConn
	inet bool // an AF_INET socket; else AF_INET6, which takes IPv4-mapped addresses

	r batchReader // owned by the one reading goroutine
	w batchWriter
}

type batchReader struct {
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet6 // room for either family
	bufs  []byte                           // batchSize slots of batchSlot bytes
	n     int                              // datagrams in the batch
	next  int                              // the next one to hand out
	err   error
	recv  func(fd uintptr) bool // the RawConn.Read callback, made once
}

type batchWriter struct {
	mu    sync.Mutex
	room  sync.Cond     // signalled when the queue empties
	busy  bool          // a writer is sending; others queue
	queue []outDatagram // filled while busy, up to batchSize
	spare []outDatagram // what the sending writer sends
	// Bursts held for a connection's writer (udpburst_linux.go), by
	// heldKey, and spare ones.
	held map[netip.AddrPort]*burst
	free []*burst
	// Owned by the sending writer.
	hdrs   [sendMax]unix.Mmsghdr
	iovs   [sendMax]unix.Iovec
	names  [sendMax]unix.RawSockaddrInet6
	msgs   []outDatagram
	merged []outDatagram // the queue and a burst, sent together
	start  int           // the first of msgs not yet sent
	sent   int
	err    error
	send   func(fd uintptr) bool // the RawConn.Write callback, made once

	// System calls that wrote datagrams: sendto of one, and sendmmsg
	// with the datagrams they sent.
	singles, batches, batched atomic.Uint64
}

type outDatagram struct {
	buf []byte // batchSlot bytes; n of them queued
	n   int
	to  netip.AddrPort
}

// newBatchConn wraps c; on a socket it cannot inspect it returns c as it
// is, which the ICE mux reads and writes one datagram at a time.
func newBatchConn(c *net.UDPConn) net.PacketConn {
	raw, err := c.SyscallConn()
	if err != nil {
		return c
	}
	domain := -1
	if err := raw.Control(func(fd uintptr) {
		domain, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil || (domain != unix.AF_INET && domain != unix.AF_INET6) {
		return c
	}
	b := &batchConn{UDPConn: c, raw: raw, inet: domain == unix.AF_INET}
	b.r.bufs = make([]byte, batchSize*batchSlot)
	for i := range b.r.hdrs {
		b.r.iovs[i].Base = &b.r.bufs[i*batchSlot]
		b.r.iovs[i].SetLen(batchSlot)
		b.r.hdrs[i].Hdr.Iov = &b.r.iovs[i]
		b.r.hdrs[i].Hdr.SetIovlen(1)
		b.r.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.r.names[i]))
	}
	b.r.recv = b.recvBatch
	slots := make([]byte, 2*batchSize*batchSlot)
	b.w.queue = make([]outDatagram, 0, batchSize)
	b.w.spare = make([]outDatagram, 0, batchSize)
	for i := range batchSize {
		b.w.queue = append(b.w.queue, outDatagram{buf: slots[2*i*batchSlot : (2*i+1)*batchSlot]})
		b.w.spare = append(b.w.spare, outDatagram{buf: slots[(2*i+1)*batchSlot : (2*i+2)*batchSlot]})
	}
	b.w.queue, b.w.spare = b.w.queue[:0], b.w.spare[:0]
	for i := range b.w.hdrs {
		b.w.hdrs[i].Hdr.Iov = &b.w.iovs[i]
		b.w.hdrs[i].Hdr.SetIovlen(1)
		b.w.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.w.names[i]))
	}
	b.w.send = b.sendBatch
	b.w.room.L = &b.w.mu
	b.w.held = map[netip.AddrPort]*burst{}
	b.w.merged = make([]outDatagram, 0, sendMax)
	return b
}

// ReadFromAddrPort returns the next datagram of the current batch, reading
// a new batch when it is used up.
func (c *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	r := &c.r
	for r.next >= r.n {
		r.n, r.next, r.err = 0, 0, nil
		if err := c.raw.Read(r.recv); err != nil {
			return 0, netip.AddrPort{}, err
		}
		if r.err != nil {
			return 0, netip.AddrPort{}, r.err
		}
	}
	h := &r.hdrs[r.next]
	n := copy(p, r.bufs[r.next*batchSlot:r.next*batchSlot+int(min(h.Len, batchSlot))])
	from := sockaddrAddrPort(&r.names[r.next])
	r.next++
	return n, from, nil
}

// ReadFrom implements net.PacketConn through the same batches.
func (c *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// recvBatch is the RawConn.Read callback: false asks the poller to wait
// for the socket to become readable.
func (c *batchConn) recvBatch(fd uintptr) bool {
	r := &c.r
	for i := range r.hdrs {
		r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].Hdr.Flags = 0
		r.hdrs[i].Len = 0
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
	for errno == unix.EINTR {
		n, _, errno = unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
	}
	switch errno {
	case 0:
		r.n = int(n)
		return true
	case unix.EAGAIN:
		return false
	default:
		r.err = &net.OpError{Op: "recvmmsg", Net: "udp", Source: c.LocalAddr(), Err: errno}
		return true
	}
}

// WriteToAddrPort sends p to the address, or queues it for the writer
// already sending, which sends it before it returns. A queued datagram is
// reported written: UDP promises no more.
func (c *batchConn) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	w := &c.w
	w.mu.Lock()
	if len(w.held) > 0 && c.holdWrite(p, to) {
		return len(p), nil
	}
	for w.busy {
		if k := len(w.queue); k < batchSize && len(p) <= batchSlot {
			w.queue = w.queue[:k+1]
			d := &w.queue[k]
			d.n = copy(d.buf, p)
			d.to = to
			w.mu.Unlock()
			return len(p), nil
		}
		// The queue is full (or p too long for it): wait for room, as a
		// write of its own could overtake what this writer queued.
		w.room.Wait()
	}
	w.busy = true
	w.mu.Unlock()
	n, err := c.UDPConn.WriteToUDPAddrPort(p, to)
	w.singles.Add(1)
	c.drain()
	return n, err
}

// WriteTo implements net.PacketConn through the same queue.
func (c *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	u, ok := addr.(*net.UDPAddr)
	if !ok {
		return c.UDPConn.WriteTo(p, addr)
	}
	return c.WriteToAddrPort(p, u.AddrPort())
}

// drain sends what other writers queued while this one was sending, until
// nothing is left, and lets the next writer send.
func (c *batchConn) drain() {
	w := &c.w
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.busy = false
			w.mu.Unlock()
			w.room.Broadcast()
			return
		}
		w.queue, w.spare = w.spare[:0], w.queue
		w.mu.Unlock()
		w.room.Broadcast()
		c.sendQueued(w.spare)
	}
}

// sendQueued sends msgs with as few sendmmsg calls as the kernel allows;
// a datagram the kernel refuses (an unreachable address) is dropped, as
// a write of its own would have failed.
func (c *batchConn) sendQueued(msgs []outDatagram) {
	w := &c.w
	for i := range msgs {
		d := &msgs[i]
		w.iovs[i].Base = &d.buf[0]
		w.iovs[i].SetLen(d.n)
		w.hdrs[i].Hdr.Namelen = c.putSockaddr(&w.names[i], d.to)
		w.hdrs[i].Len = 0
	}
	w.msgs = msgs
	for w.start = 0; w.start < len(msgs); {
		w.sent, w.err = 0, nil
		if err := c.raw.Write(w.send); err != nil {
			return // the socket is closed
		}
		if w.err != nil {
			w.start++ // skip the datagram the kernel refused
		} else {
			w.start += w.sent
		}
	}
	w.msgs = nil
}

// sendBatch is the RawConn.Write callback for the datagrams from w.start
// on: false asks the poller to wait for room in the socket's buffer.
func (c *batchConn) sendBatch(fd uintptr) bool {
	w := &c.w
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.start])), uintptr(len(w.msgs)-w.start), unix.MSG_DONTWAIT, 0, 0)
	for errno == unix.EINTR {
		n, _, errno = unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.start])), uintptr(len(w.msgs)-w.start), unix.MSG_DONTWAIT, 0, 0)
	}
	switch errno {
	case 0:
		w.sent = int(n)
		w.batches.Add(1)
		w.batched.Add(uint64(n))
		return true
	case unix.EAGAIN:
		return false
	default:
		w.err = errno
		return true
	}
}

// putSockaddr writes to as the socket's family takes it and returns its
// length. An IPv6 address on an IPv4 socket is written as it is, and the
// kernel refuses that datagram alone.
func (c *batchConn) putSockaddr(sa *unix.RawSockaddrInet6, to netip.AddrPort) uint32 {
	port := to.Port()
	if c.inet && to.Addr().Unmap().Is4() {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().Unmap().As4()}
		p := (*[2]byte)(unsafe.Pointer(&s4.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		return unix.SizeofSockaddrInet4
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: to.Addr().As16()}
	if z := to.Addr().Zone(); z != "" {
		if id, err := strconv.Atoi(z); err == nil {
			sa.Scope_id = uint32(id)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			sa.Scope_id = uint32(ifi.Index)
		}
	}
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	return unix.SizeofSockaddrInet6
}

// sockaddrAddrPort reads the address recvmmsg wrote.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.Itoa(int(sa.Scope_id)))
		}
		return netip.AddrPortFrom(a, uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}
