package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ICE-TCP (RFC 6544): the node's passive TCP candidate, for networks
// that let no UDP out. Each TCP connection carries one remote
// candidate's datagrams, each framed by a two-byte length (RFC 4571).
// The first frame must be a binding request that passes a check of the
// connection it names; from then on every frame goes to that connection,
// read on the TCP connection's own goroutine.
const (
	// tcpFirstFrame bounds the time a TCP connection may take to send its
	// first check: a connection that sends nothing is closed.
	tcpFirstFrame = 10 * time.Second
	// tcpWriteTimeout bounds one framed write; a remote side that reads
	// nothing for that long loses its TCP connection, not its neighbours'
	// turn to write.
	tcpWriteTimeout = 5 * time.Second
	// maxTCPConns bounds the TCP connections the port holds at once,
	// checked or not.
	maxTCPConns = 4096
	// maxUncheckedPerIP bounds the TCP connections one address holds
	// before their first check passed, so that one host cannot take the
	// port's whole share for tcpFirstFrame at a time.
	maxUncheckedPerIP = 16
)

// tcpLink is one accepted TCP connection.
type tcpLink struct {
	c       net.Conn
	from    netip.AddrPort
	checked bool       // its first check passed; under the port's lock
	mu      sync.Mutex // one framed write at a time
	out     []byte
}

// write sends b as one frame, within tcpWriteTimeout.
func (l *tcpLink) write(b []byte) error {
	if len(b) > 0xffff {
		return errors.New("wire: a datagram too long for an RFC 4571 frame")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.out = append(binary.BigEndian.AppendUint16(l.out[:0], uint16(len(b))), b...)
	_ = l.c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
	if _, err := l.c.Write(l.out); err != nil {
		_ = l.c.Close() // a partial frame ends the framing
		return fmt.Errorf("wire: ice-tcp write: %w", err)
	}
	return nil
}

// ServeTCP accepts ICE-TCP connections on ln until the port closes; the
// port closes ln. It returns at once; the port owns the goroutines.
func (p *Port) ServeTCP(ln net.Listener) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return net.ErrClosed
	}
	p.tcpListeners = append(p.tcpListeners, ln)
	p.wg.Go(func() { p.accept(ln) })
	return nil
}

func (p *Port) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			p.log.Warn("wire: ice-tcp accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		from, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil {
			_ = c.Close()
			continue
		}
		l := &tcpLink{c: c, from: netip.AddrPortFrom(from.Addr().Unmap(), from.Port())}
		if !p.holdTCP(l) {
			_ = c.Close()
			continue
		}
		p.wg.Go(func() {
			defer p.dropTCP(l)
			p.readTCP(l)
		})
	}
}

// holdTCP registers l by its remote address, within maxTCPConns and
// maxUncheckedPerIP.
func (p *Port) holdTCP(l *tcpLink) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ip := l.from.Addr()
	if p.closed || len(p.tcp) >= maxTCPConns || p.unchecked[ip] >= maxUncheckedPerIP {
		return false
	}
	if old := p.tcp[l.from]; old != nil {
		_ = old.c.Close()
	}
	p.tcp[l.from] = l
	p.unchecked[ip]++
	return true
}

// passTCP marks l checked: it no longer counts against its address's
// unchecked connections.
func (p *Port) passTCP(l *tcpLink) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !l.checked {
		l.checked = true
		p.forgetUncheckedLocked(l.from.Addr())
	}
}

func (p *Port) forgetUncheckedLocked(ip netip.Addr) {
	if p.unchecked[ip]--; p.unchecked[ip] <= 0 {
		delete(p.unchecked, ip)
	}
}

func (p *Port) dropTCP(l *tcpLink) {
	_ = l.c.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !l.checked {
		l.checked = true
		p.forgetUncheckedLocked(l.from.Addr())
	}
	if p.tcp[l.from] == l {
		delete(p.tcp, l.from)
	}
	if c := p.byAddr[l.from]; c != nil {
		delete(p.byAddr, l.from)
		p.addrs[c] = dropAddr(p.addrs[c], l.from)
	}
}

// readTCP delivers l's frames until it closes or sends one that is not
// its own: the first must be a check that passes.
func (p *Port) readTCP(l *tcpLink) {
	buf := make([]byte, maxDatagram)
	_ = l.c.SetReadDeadline(time.Now().Add(tcpFirstFrame))
	first := true
	for {
		n, err := readFrame(l.c, buf)
		if err != nil {
			return
		}
		if first {
			if !p.deliverFirst(buf[:n], l.from) {
				return
			}
			p.passTCP(l)
			_ = l.c.SetReadDeadline(time.Time{})
			first = false
			continue
		}
		p.deliver(buf[:n], l.from)
	}
}

// deliverFirst routes a TCP connection's first frame as a binding
// request from a new address, and reports whether it passed.
func (p *Port) deliverFirst(b []byte, from netip.AddrPort) bool {
	p.deliver(b, from)
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.byAddr[from] != nil
}

// isTCP reports whether addr is an ICE-TCP connection's.
// IsTCP reports whether addr is the remote address of an ICE-TCP
// connection of the port's.
func (p *Port) IsTCP(addr netip.AddrPort) bool { return p.isTCP(addr) }

func (p *Port) isTCP(addr netip.AddrPort) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.tcp[addr] != nil
}

// readFrame reads one RFC 4571 frame into buf.
func readFrame(r io.Reader, buf []byte) (int, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > len(buf) {
		return 0, fmt.Errorf("wire: an ice-tcp frame of %d bytes", n)
	}
	_, err := io.ReadFull(r, buf[:n])
	return n, err
}
