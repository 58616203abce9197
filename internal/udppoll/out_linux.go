//go:build linux

package udppoll

import (
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// outSize is how many datagrams a loop queues before it sends them.
const outSize = 64

// Out is a loop's queue of datagrams to send. A relay sends most of what
// peers send back to its clients through one socket, the TURN port's:
// queued during a round of the loop, they leave with one sendmmsg instead
// of a sendto each. Datagrams to other sockets go out in the same flush,
// in the order they were queued for each socket.
type Out[T any] struct {
	n     int
	socks [outSize]*Socket[T]
	bufs  [outSize][]byte
	msgs  [outSize]unix.Mmsghdr
	iovs  [outSize]unix.Iovec
	addrs [outSize]unix.RawSockaddrInet6
	group [outSize]unix.Mmsghdr // the messages of one socket, for one sendmmsg
}

func newOut[T any]() *Out[T] {
	o := &Out[T]{}
	for i := range o.bufs {
		o.bufs[i] = make([]byte, MaxDatagram)
		o.iovs[i].Base = &o.bufs[i][0]
		o.msgs[i].Hdr.Iov = &o.iovs[i]
		o.msgs[i].Hdr.SetIovlen(1)
		o.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&o.addrs[i]))
	}
	return o
}

// Send queues a copy of b for to on s, a socket of the same set; it is
// sent before the loop waits again. A datagram longer than MaxDatagram,
// or to an address s cannot reach, is dropped with an error.
func (o *Out[T]) Send(s *Socket[T], b []byte, to netip.AddrPort) error {
	if len(b) > MaxDatagram {
		return errTooLong
	}
	if o.n == outSize {
		o.flush()
	}
	i := o.n
	_, saLen, ok := toRaw(s.family, to, &o.addrs[i])
	if !ok {
		return errFamily
	}
	o.msgs[i].Hdr.Namelen = saLen
	o.iovs[i].SetLen(copy(o.bufs[i], b))
	o.socks[i] = s
	o.n++
	return nil
}

// flush sends what is queued, each socket's datagrams with one sendmmsg.
func (o *Out[T]) flush() {
	for i := range o.n {
		s := o.socks[i]
		if s == nil {
			continue
		}
		k := 0
		for j := i; j < o.n; j++ {
			if o.socks[j] == s {
				o.group[k] = o.msgs[j]
				o.socks[j] = nil
				k++
			}
		}
		s.sendBatch(o.group[:k])
	}
	o.n = 0
}

// sendBatch sends msgs without waiting; what the send buffer cannot take
// is dropped, as on a congested link.
func (s *Socket[T]) sendBatch(msgs []unix.Mmsghdr) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	for sent := 0; sent < len(msgs); {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&msgs[sent])), uintptr(len(msgs)-sent), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EINTR:
		case errno == unix.EAGAIN:
			return
		case errno != 0 || n == 0:
			sent++ // the first message failed alone: drop it, send the rest
		default:
			sent += int(n)
		}
	}
}

var (
	errTooLong = &net.OpError{Op: "write", Net: "udp", Err: unix.EMSGSIZE}
	errFamily  = &net.OpError{Op: "write", Net: "udp", Err: unix.EAFNOSUPPORT}
)
