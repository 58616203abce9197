package wire

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
)

// sent records what a connection sent.
type sent struct {
	mu   sync.Mutex
	msgs [][]byte
	to   []netip.AddrPort
}

func (s *sent) send(b []byte, to netip.AddrPort) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, append([]byte(nil), b...))
	s.to = append(s.to, to)
	return nil
}

type discard struct{}

func (discard) RTP([]byte, *rtp.Header) {}
func (discard) RTCP([]byte)             {}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var testLocal = Credentials{Ufrag: "nodeufrag", Pwd: "node-password-of-24-chars"}

func newTestConn(t testing.TB, out *sent, clk *clock) *Conn {
	t.Helper()
	cert, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Local: testLocal, Certificate: cert, Send: out.send, Handler: discard{}}
	if clk != nil {
		cfg.Now = clk.now
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bindingRequest is a check as a browser sends one.
func bindingRequest(t testing.TB, user, pwd string, nominate, fingerprint bool) []byte {
	t.Helper()
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest, stun.NewUsername(user)}
	if nominate {
		setters = append(setters, ice.UseCandidate())
	}
	setters = append(setters, stun.NewShortTermIntegrity(pwd))
	if fingerprint {
		setters = append(setters, stun.Fingerprint)
	}
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

// TestICELiteAnswersOnlyValidChecks: a check is answered, with the
// address it came from and the node's integrity, only if it names the
// node's and the remote side's ufrags and carries the node's password
// and a fingerprint; a nominating check selects its pair.
func TestICELiteAnswersOnlyValidChecks(t *testing.T) {
	from := netip.MustParseAddrPort("192.0.2.7:50000")
	tests := []struct {
		name     string
		remote   string // the remote ufrag the connection knows; "" before the remote description
		req      func(t *testing.T) []byte
		answered bool
		selected bool
	}{
		{"nominating check", "peer", func(t *testing.T) []byte { return bindingRequest(t, "nodeufrag:peer", testLocal.Pwd, true, true) }, true, true},
		{"check without nomination", "peer", func(t *testing.T) []byte { return bindingRequest(t, "nodeufrag:peer", testLocal.Pwd, false, true) }, true, false},
		{"check before the remote description", "", func(t *testing.T) []byte { return bindingRequest(t, "nodeufrag:peer", testLocal.Pwd, true, true) }, true, true},
		{"wrong password", "peer", func(t *testing.T) []byte {
			return bindingRequest(t, "nodeufrag:peer", "another-password-24-chars", true, true)
		}, false, false},
		{"another connection's ufrag", "peer", func(t *testing.T) []byte { return bindingRequest(t, "otherufrag:peer", testLocal.Pwd, true, true) }, false, false},
		{"another remote ufrag", "peer", func(t *testing.T) []byte { return bindingRequest(t, "nodeufrag:intruder", testLocal.Pwd, true, true) }, false, false},
		{"ufrag without a colon", "peer", func(t *testing.T) []byte { return bindingRequest(t, "nodeufrag", testLocal.Pwd, true, true) }, false, false},
		{"no fingerprint", "peer", func(t *testing.T) []byte { return bindingRequest(t, "nodeufrag:peer", testLocal.Pwd, true, false) }, false, false},
		{"a response, not a request", "peer", func(t *testing.T) []byte {
			m, err := stun.Build(stun.TransactionID, stun.BindingSuccess, stun.Fingerprint)
			if err != nil {
				t.Fatal(err)
			}
			return m.Raw
		}, false, false},
		{"not STUN", "peer", func(*testing.T) []byte { return []byte{0, 1, 0, 0, 1, 2, 3} }, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out sent
			c := newTestConn(t, &out, nil)
			defer c.Close()
			if tt.remote != "" {
				c.ice.setCredentials(testLocal, Credentials{Ufrag: tt.remote})
			}
			_ = c.Deliver(tt.req(t), from)
			if got := len(out.msgs) == 1; got != tt.answered {
				t.Fatalf("answered: %v, want %v", got, tt.answered)
			}
			if _, ok := c.Remote(); ok != tt.selected {
				t.Fatalf("pair selected: %v, want %v", ok, tt.selected)
			}
			if !tt.answered {
				return
			}
			checkResponse(t, out.msgs[0], from)
			if out.to[0] != from {
				t.Fatalf("answered to %v, want %v", out.to[0], from)
			}
		})
	}
}

// checkResponse checks a binding success response as the remote agent
// does: the node's integrity, a fingerprint, the mapped address.
func checkResponse(t *testing.T, raw []byte, from netip.AddrPort) {
	t.Helper()
	m := &stun.Message{Raw: raw}
	if err := m.Decode(); err != nil {
		t.Fatal(err)
	}
	if m.Type != stun.BindingSuccess {
		t.Fatalf("response type %v", m.Type)
	}
	if err := stun.NewShortTermIntegrity(testLocal.Pwd).Check(m); err != nil {
		t.Fatalf("response integrity: %v", err)
	}
	if err := stun.Fingerprint.Check(m); err != nil {
		t.Fatalf("response fingerprint: %v", err)
	}
	var mapped stun.XORMappedAddress
	if err := mapped.GetFrom(m); err != nil {
		t.Fatal(err)
	}
	if got := netip.AddrPortFrom(netip.MustParseAddr(mapped.IP.String()), uint16(mapped.Port)); got != from {
		t.Fatalf("mapped address %v, want %v", got, from)
	}
}

// TestDTLSOnlyFromCheckedAddresses: a DTLS record from an address that
// passed no check is refused; after a check from it, taken.
func TestDTLSOnlyFromCheckedAddresses(t *testing.T) {
	var out sent
	c := newTestConn(t, &out, nil)
	defer c.Close()
	from := netip.MustParseAddrPort("192.0.2.7:50000")
	record := []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := c.Deliver(record, from); err == nil {
		t.Fatal("a DTLS record from an unchecked address was taken")
	}
	if err := c.Deliver(bindingRequest(t, "nodeufrag:peer", testLocal.Pwd, false, true), from); err != nil {
		t.Fatal(err)
	}
	if err := c.Deliver(record, from); err != nil {
		t.Fatalf("a DTLS record after a check: %v", err)
	}
}

// TestCheckAnsweredWhereItArrived: a check delivered with a socket of its
// own to answer through is answered there, not through the connection's
// Send: on a host with several addresses the port of each has a socket,
// and the remote agent drops an answer from another address. (The
// answers to checks on a node's IPv6 address once left through its IPv4
// socket, and failed.)
func TestCheckAnsweredWhereItArrived(t *testing.T) {
	var out, via sent
	c := newTestConn(t, &out, nil)
	defer c.Close()
	from := netip.MustParseAddrPort("[2001:db8::7]:50000")
	if err := c.DeliverVia(bindingRequest(t, "nodeufrag:peer", testLocal.Pwd, true, true), from, via.send); err != nil {
		t.Fatal(err)
	}
	if len(via.msgs) != 1 || via.to[0] != from || len(out.msgs) != 0 {
		t.Fatalf("%d answers through the arrival socket, %d through Send; want 1 and 0", len(via.msgs), len(out.msgs))
	}
	checkResponse(t, via.msgs[0], from)
	if err := c.Deliver(bindingRequest(t, "nodeufrag:peer", testLocal.Pwd, true, true), from); err != nil || len(out.msgs) != 1 {
		t.Fatalf("without a socket of its own, a check is answered through Send: %v, %d", err, len(out.msgs))
	}
}

// TestConsentExpiry: a connected connection whose remote agent stops
// checking is disconnected after DisconnectedAfter, connected again when
// checks resume, and failed after FailedAfter for good.
func TestConsentExpiry(t *testing.T) {
	var out sent
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := newTestConn(t, &out, clk)
	defer c.Close()
	from := netip.MustParseAddrPort("192.0.2.7:50000")
	check := func() {
		if err := c.Deliver(bindingRequest(t, "nodeufrag:peer", testLocal.Pwd, true, true), from); err != nil {
			t.Fatal(err)
		}
	}
	check()
	c.ready.Store(true) // as a finished handshake leaves it
	c.setState(StateConnected)
	steps := []struct {
		advance time.Duration
		check   bool
		want    State
	}{
		{5 * time.Second, false, StateConnected},
		{DisconnectedAfter - 5*time.Second, false, StateDisconnected},
		{time.Second, true, StateConnected},
		{FailedAfter, false, StateFailed},
		{0, true, StateFailed},
	}
	for i, s := range steps {
		clk.advance(s.advance)
		if s.check {
			check()
		}
		if got := c.CheckConsent(); got != s.want {
			t.Fatalf("step %d: %v, want %v", i, got, s.want)
		}
	}
}

// FuzzDeliver: no datagram makes a connection panic or answer a check
// that is not valid; SRTP and SRTCP are tried against real keys.
func FuzzDeliver(f *testing.F) {
	key, salt := make([]byte, 16), make([]byte, 12)
	enc, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		f.Fatal(err)
	}
	plain, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 1, SSRC: 5}, Payload: []byte{1, 2, 3}}).Marshal()
	srtpSeed, err := enc.EncryptRTP(nil, plain, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bindingRequest(f, "nodeufrag:peer", testLocal.Pwd, true, true))
	f.Add(srtpSeed)
	f.Add([]byte{0x80, 200, 0, 6, 0, 0, 0, 5})
	f.Add([]byte{22, 0xfe, 0xfd, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		var out sent
		c := newTestConn(t, &out, nil)
		defer c.Close()
		dec, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
		if err != nil {
			t.Fatal(err)
		}
		c.rx.ctx = dec
		c.ready.Store(true)
		_ = c.Deliver(p, netip.MustParseAddrPort("192.0.2.7:50000"))
		for _, m := range out.msgs {
			checkResponse(t, m, netip.MustParseAddrPort("192.0.2.7:50000"))
		}
	})
}

// FuzzReadFrame: an ICE-TCP stream never makes the frame reader read
// past its buffer or return more than it holds.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 1})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		buf := make([]byte, maxDatagram)
		r := bytes.NewReader(stream)
		for {
			n, err := readFrame(r, buf)
			if err != nil {
				return
			}
			if n > len(buf) {
				t.Fatalf("a frame of %d bytes in a buffer of %d", n, len(buf))
			}
		}
	})
}
