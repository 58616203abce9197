//go:build linux

package media

import "net/netip"

// Bursts: a subscriber connection's writer writes every packet it has
// ready in one go (connwriter.go), each through pion's SRTP and ICE down
// to the shared socket, where most writes meet no other writer and would
// each be a sendto of their own. While the writer holds its subscriber's
// address, the socket keeps what is written to it; the release sends it,
// with whatever other writers queued meanwhile, in one sendmmsg. Nothing
// waits on a timer: a datagram is held only while the writer writes the
// rest of its burst, and a full burst (batchSize) is sent at once.

// maxFreeBursts bounds the spare bursts a socket keeps for its next holds.
const maxFreeBursts = 16

// burst is what was written to one held address, in order.
type burst struct {
	data     []byte // the datagrams, one after another
	msgs     []heldDatagram
	flushing bool // being sent: writers to the address wait
}

type heldDatagram struct {
	off, n int
	to     netip.AddrPort // as written, which heldKey may not be
}

func (b *burst) add(p []byte, to netip.AddrPort) {
	b.msgs = append(b.msgs, heldDatagram{off: len(b.data), n: len(p), to: to})
	b.data = append(b.data, p...)
}

func (b *burst) reset() {
	b.data, b.msgs = b.data[:0], b.msgs[:0]
}

// fitsQueue is whether every datagram fits a queue slot.
func (b *burst) fitsQueue() bool {
	for _, m := range b.msgs {
		if m.n > batchSlot {
			return false
		}
	}
	return true
}

// heldKey is the form of an address that holds match: an IPv4 address
// and its IPv4-mapped IPv6 form are one, and zones are ignored. Each
// datagram keeps the address it was written to.
func heldKey(to netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(to.Addr().Unmap().WithZone(""), to.Port())
}

// hold keeps what is written to the address until release. It returns
// false, and the caller must not release, when the address is already
// held.
func (c *batchConn) hold(to netip.AddrPort) bool {
	w := &c.w
	k := heldKey(to)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.held[k]; ok {
		return false
	}
	var b *burst
	if n := len(w.free); n > 0 {
		b, w.free = w.free[n-1], w.free[:n-1]
	} else {
		b = &burst{}
	}
	w.held[k] = b
	return true
}

// release sends what was held for the address, with what other writers
// queued, in one sendmmsg, or hands it to the writer already sending,
// and stops holding.
func (c *batchConn) release(to netip.AddrPort) {
	w := &c.w
	k := heldKey(to)
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		b := w.held[k]
		if b == nil {
			return
		}
		if b.flushing {
			w.room.Wait()
			continue
		}
		c.shipLocked(b)
		delete(w.held, k)
		if len(w.free) < maxFreeBursts {
			w.free = append(w.free, b)
		}
		return
	}
}

// holdWrite keeps p when its address is held and returns true, with w.mu
// unlocked; otherwise it returns false with w.mu still locked. A full
// burst is sent first.
func (c *batchConn) holdWrite(p []byte, to netip.AddrPort) bool {
	w := &c.w
	if len(p) == 0 {
		return false
	}
	k := heldKey(to)
	for {
		b := w.held[k]
		switch {
		case b == nil:
			return false
		case b.flushing:
			w.room.Wait()
		case len(b.msgs) >= batchSize:
			c.shipLocked(b)
		default:
			b.add(p, to)
			w.mu.Unlock()
			return true
		}
	}
}

// shipLocked sends b's datagrams, after what the queue holds, in one
// sendmmsg, or, while another writer is sending, appends them to the
// queue, which that writer sends. The caller holds w.mu, which is
// released meanwhile; writers to b's address wait until b is empty again.
func (c *batchConn) shipLocked(b *burst) {
	w := &c.w
	b.flushing = true
	for len(b.msgs) > 0 {
		if !w.busy {
			w.busy = true
			w.queue, w.spare = w.spare[:0], w.queue
			w.mu.Unlock()
			w.room.Broadcast()
			msgs := append(w.merged[:0], w.spare...)
			for _, m := range b.msgs {
				msgs = append(msgs, outDatagram{buf: b.data[m.off : m.off+m.n], n: m.n, to: m.to})
			}
			c.sendQueued(msgs)
			clear(msgs)
			w.merged = msgs[:0]
			c.drain()
			w.mu.Lock()
			b.reset()
			break
		}
		if len(w.queue)+len(b.msgs) <= batchSize && b.fitsQueue() {
			for _, m := range b.msgs {
				k := len(w.queue)
				w.queue = w.queue[:k+1]
				d := &w.queue[k]
				d.n = copy(d.buf, b.data[m.off:m.off+m.n])
				d.to = m.to
			}
			b.reset()
			break
		}
		w.room.Wait()
	}
	b.flushing = false
	w.room.Broadcast()
}

// writeCounts is how many system calls wrote the socket's datagrams.
func (c *batchConn) writeCounts() UDPWrites {
	return UDPWrites{Single: c.w.singles.Load(), Batches: c.w.batches.Load(), Batched: c.w.batched.Load()}
}
