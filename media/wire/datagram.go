package wire

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/pion/rtp"
)

// Kind is what a datagram carries, by its first byte (RFC 7983).
type Kind int

const (
	KindOther Kind = iota
	KindSTUN
	KindDTLS
	KindSRTP
	KindSRTCP
)

// Classify tells what p carries.
func Classify(p []byte) Kind {
	if len(p) == 0 {
		return KindOther
	}
	switch b := p[0]; {
	case b <= 3:
		return KindSTUN
	case b >= 20 && b <= 63:
		return KindDTLS
	case b >= 128 && b <= 191:
		// RTCP packet types 192 to 223 fall where RTP's marker bit and
		// payload type are (RFC 5761 section 4); media never uses
		// payload types 64 to 95.
		if len(p) >= 2 && p[1] >= 192 && p[1] <= 223 {
			return KindSRTCP
		}
		return KindSRTP
	}
	return KindOther
}

// Deliver handles one datagram from addr, on the caller's goroutine: a
// binding request is answered, a DTLS record queued for the handshake
// (from an address that passed a check), SRTP and SRTCP decrypted in
// place (p is overwritten) and handed to the Handler. It returns why a
// datagram was dropped: a check that failed, a packet that did not
// decrypt, or nil for one taken or ignored on purpose. It never blocks.
func (c *Conn) Deliver(p []byte, from netip.AddrPort) error {
	return c.DeliverVia(p, from, nil)
}

// DeliverVia is Deliver with a binding request answered through reply,
// when set, instead of Config.Send: from the socket the request arrived
// on, which a remote agent requires, before anything routes from to the
// connection.
func (c *Conn) DeliverVia(p []byte, from netip.AddrPort, reply func([]byte, netip.AddrPort) error) error {
	switch Classify(p) {
	case KindSTUN:
		if reply == nil {
			reply = c.cfg.Send
		}
		return c.deliverSTUN(p, from, reply)
	case KindDTLS:
		if !c.checked(from) {
			return fmt.Errorf("wire: DTLS from %v, which passed no ICE check", from)
		}
		c.link.deliver(p)
		return nil
	case KindSRTP:
		return c.deliverSRTP(p)
	case KindSRTCP:
		return c.deliverSRTCP(p)
	}
	return errors.New("wire: a datagram that is neither STUN, DTLS nor SRTP")
}

func (c *Conn) deliverSTUN(p []byte, from netip.AddrPort, reply func([]byte, netip.AddrPort) error) error {
	res, err := c.ice.handle(p, from)
	if err != nil || res.response == nil {
		return err
	}
	c.noteChecked(from)
	if err := reply(res.response, from); err != nil {
		return fmt.Errorf("wire: binding response: %w", err)
	}
	if res.nominated && c.ready.Load() {
		c.setState(StateConnected) // consent regained, or a new pair
	}
	return nil
}

// noteChecked remembers from as an address that passed a check.
func (c *Conn) noteChecked(from netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.valid, from); i >= 0 {
		c.valid = append(c.valid[:i], c.valid[i+1:]...)
	} else if len(c.valid) == maxValid {
		c.valid = c.valid[1:]
	}
	c.valid = append(c.valid, from)
}

func (c *Conn) checked(from netip.AddrPort) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.valid, from)
}

// lockRx takes the receive side, once the SRTP keys are set; the caller
// unlocks it.
func (c *Conn) lockRx() bool {
	if !c.ready.Load() {
		return false
	}
	c.rx.Lock()
	if c.rx.ctx == nil {
		c.rx.Unlock()
		return false
	}
	return true
}

func (c *Conn) deliverSRTP(p []byte) error {
	if !c.lockRx() {
		return ErrNotConnected
	}
	defer c.rx.Unlock()
	out, err := c.rx.ctx.DecryptRTP(p[:0], p, &c.rx.rtp)
	if err != nil {
		return fmt.Errorf("wire: srtp: %w", err)
	}
	c.cfg.Handler.RTP(out, &c.rx.rtp)
	return nil
}

func (c *Conn) deliverSRTCP(p []byte) error {
	if !c.lockRx() {
		return ErrNotConnected
	}
	defer c.rx.Unlock()
	out, err := c.rx.ctx.DecryptRTCP(p[:0], p, &c.rx.rtcp)
	if err != nil {
		return fmt.Errorf("wire: srtcp: %w", err)
	}
	c.cfg.Handler.RTCP(out)
	return nil
}

// WriteRTP encrypts a packet of h and payload and sends it on the
// selected pair. Writers of one connection take turns.
func (c *Conn) WriteRTP(h *rtp.Header, payload []byte) error {
	to, ok := c.Remote()
	if !ok || !c.ready.Load() {
		return ErrNotConnected
	}
	c.tx.Lock()
	defer c.tx.Unlock()
	n := h.MarshalSize()
	plain := slices.Grow(c.tx.plain[:0], n+len(payload))[:n+len(payload)]
	if _, err := h.MarshalTo(plain); err != nil {
		return fmt.Errorf("wire: rtp header: %w", err)
	}
	copy(plain[n:], payload)
	c.tx.plain = plain
	out, err := c.tx.ctx.EncryptRTP(c.tx.out[:0], plain, &c.tx.hdr)
	if err != nil {
		return fmt.Errorf("wire: srtp: %w", err)
	}
	c.tx.out = out
	return c.cfg.Send(out, to)
}

// WriteRTCP encrypts a compound RTCP packet and sends it on the selected
// pair.
func (c *Conn) WriteRTCP(p []byte) error {
	to, ok := c.Remote()
	if !ok || !c.ready.Load() {
		return ErrNotConnected
	}
	c.tx.Lock()
	defer c.tx.Unlock()
	out, err := c.tx.ctx.EncryptRTCP(c.tx.out[:0], p, &c.tx.rtcp)
	if err != nil {
		return fmt.Errorf("wire: srtcp: %w", err)
	}
	c.tx.out = out
	return c.cfg.Send(out, to)
}
