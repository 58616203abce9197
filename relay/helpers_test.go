package relay

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openconsult/openconsult/internal/syncbuf"
	"github.com/openconsult/openconsult/internal/testpki"
)

var (
	testSecret = []byte("current-secret-of-the-test-relay")
	loopback   = netip.MustParsePrefix("127.0.0.1/32")
)

const testRealm = "consult.test"

// testRelay is a relay on a random loopback port with its registry and log.
type testRelay struct {
	*Server
	reg *prometheus.Registry
	log *syncbuf.Buffer
}

// startRelay starts a relay that may reach peers on 127.0.0.1 (where the
// test peers live); mutate changes the configuration first.
func startRelay(t *testing.T, mutate func(*Config)) *testRelay {
	t.Helper()
	tr := &testRelay{reg: prometheus.NewRegistry(), log: &syncbuf.Buffer{}}
	cfg := DefaultConfig()
	cfg.Realm = testRealm
	cfg.Listen = "127.0.0.1:0"
	cfg.RelayBindIP = netip.MustParseAddr("127.0.0.1")
	cfg.PortMin, cfg.PortMax = 20000, 59999
	cfg.Secrets = [][]byte{testSecret}
	cfg.Policy = PeerPolicy{Allow: []netip.Prefix{loopback}}
	cfg.Log = slog.New(slog.NewJSONHandler(tr.log, nil))
	cfg.Metrics = tr.reg
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tr.Server = s
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr
}

func (tr *testRelay) counter(vec *prometheus.CounterVec, label string) float64 {
	return testutil.ToFloat64(vec.WithLabelValues(label))
}

// testClient is pion's TURN client over a socket that counts ChannelData
// frames, which shows when the relay path switched from Send and Data
// indications to channels.
type testClient struct {
	*turn.Client
	conn *sniffConn
}

func dial(t *testing.T, tr *testRelay, network, user, pass string) *testClient {
	t.Helper()
	if network == "tls" {
		return dialAt(t, tr.TLSAddr(), network, user, pass)
	}
	return dialAt(t, tr.Addr(), network, user, pass)
}

// dialAt is dial to one listen address of the relay.
func dialAt(t *testing.T, server net.Addr, network, user, pass string) *testClient {
	t.Helper()
	var conn net.PacketConn
	switch network {
	case "udp":
		local := "127.0.0.1:0"
		if server.(*net.UDPAddr).IP.To4() == nil {
			local = "[::1]:0"
		}
		c, err := net.ListenPacket("udp", local)
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	case "tcp":
		c, err := net.Dial("tcp", server.String())
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	case "tls":
		c, err := tls.Dial("tcp", server.String(), &tls.Config{InsecureSkipVerify: true}) // the test's self-signed certificate
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	default:
		t.Fatalf("unknown network %q", network)
	}
	sc := &sniffConn{PacketConn: conn}
	cl, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: server.String(), Conn: sc,
		Username: user, Password: pass, RTO: 200 * time.Millisecond, LoggerFactory: quietLoggers{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); conn.Close() })
	return &testClient{Client: cl, conn: sc}
}

// allocate allocates and registers the relayed socket's release.
func (c *testClient) allocate(t *testing.T) net.PacketConn {
	t.Helper()
	rc, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

type sniffConn struct {
	net.PacketConn
	sentChannelData, readChannelData atomic.Int64
}

func isChannelData(b []byte) bool { return len(b) >= 4 && b[0]>>6 == 1 }

func (c *sniffConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if isChannelData(p) {
		c.sentChannelData.Add(1)
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *sniffConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if err == nil && isChannelData(p[:n]) {
		c.readChannelData.Add(1)
	}
	return n, addr, err
}

func mint(secret []byte, id string) (string, string) {
	return MintCredential(secret, id, time.Hour, time.Now())
}

func newPeer(t *testing.T) net.PacketConn {
	t.Helper()
	p, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// exchange relays msg from the client to the peer and reply back, and
// checks both arrive intact and from the relayed address. Over TCP both
// must be longer than four bytes: pion's STUNConn, on either end, holds a
// ChannelData frame shorter than nine bytes until more bytes arrive.
func exchange(t *testing.T, relayed, peer net.PacketConn, msg, reply []byte) {
	t.Helper()
	if _, err := relayed.WriteTo(msg, peer.LocalAddr()); err != nil {
		t.Fatalf("client to peer: %v", err)
	}
	buf := make([]byte, 2048)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("peer received %q, %v; want %q", buf[:n], err, msg)
	}
	if from.String() != relayed.LocalAddr().String() {
		t.Fatalf("peer saw the datagram from %s, the relayed address is %s", from, relayed.LocalAddr())
	}
	if _, err := peer.WriteTo(reply, from); err != nil {
		t.Fatal(err)
	}
	_ = relayed.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err = relayed.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], reply) {
		t.Fatalf("client received %q, %v; want %q", buf[:n], err, reply)
	}
	if from.String() != peer.LocalAddr().String() {
		t.Fatalf("client got the reply from %s, the peer is %s", from, peer.LocalAddr())
	}
}

// turnCode returns the error code of a TURN error response, or 0.
func turnCode(err error) int {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	return 0
}

// fakeClock is an injected clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	certFile, keyFile := testpki.NewCA(t, "turn").Issue(t, "turn", true)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// rawClient speaks TURN by hand, for requests pion's client cannot make:
// several peers in one CreatePermission, IPv6-family forms of IPv4
// addresses, a LIFETIME of zero, a ChannelBind whose answer it can read.
type rawClient struct {
	t      *testing.T
	conn   net.PacketConn
	server net.Addr
	user   string
	pass   string
	realm  stun.Realm
	nonce  stun.Nonce
}

func newRawClient(t *testing.T, conn net.PacketConn, server net.Addr, user, pass string) *rawClient {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, server: server, user: user, pass: pass}
	// An unauthenticated Allocate is answered with the realm and a nonce.
	resp := c.roundTrip(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP, stun.Fingerprint))
	if c.nonce.GetFrom(resp) != nil || c.realm.GetFrom(resp) != nil {
		t.Fatalf("challenge without nonce or realm: %v", resp)
	}
	return c
}

// allocateUDP opens a raw client over UDP with a credential for id and
// allocates; it returns the client and the relayed address.
func allocateUDP(t *testing.T, tr *testRelay, id string) (*rawClient, *net.UDPAddr) {
	t.Helper()
	user, pass := mint(testSecret, id)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raw := newRawClient(t, conn, tr.Addr(), user, pass)
	resp := raw.request(stun.MethodAllocate, requestedUDP)
	var relayed stun.XORMappedAddress
	if err := relayed.GetFromAs(resp, stun.AttrXORRelayedAddress); err != nil {
		t.Fatalf("allocate: error %d, %v", errorCode(resp), err)
	}
	return raw, &net.UDPAddr{IP: relayed.IP, Port: relayed.Port}
}

var requestedUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

// request sends an authenticated request and returns the response.
func (c *rawClient) request(method stun.Method, attrs ...stun.Setter) *stun.Message {
	c.t.Helper()
	setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
	setters = append(setters, stun.NewUsername(c.user), c.realm, c.nonce,
		stun.NewLongTermIntegrity(c.user, c.realm.String(), c.pass), stun.Fingerprint)
	return c.roundTrip(stun.MustBuild(setters...))
}

// send sends a Send indication carrying data to peer.
func (c *rawClient) send(peer stun.Setter, data []byte) {
	c.t.Helper()
	m := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), peer,
		stun.RawAttribute{Type: stun.AttrData, Value: data}, stun.Fingerprint)
	if _, err := c.conn.WriteTo(m.Raw, c.server); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) roundTrip(m *stun.Message) *stun.Message {
	c.t.Helper()
	buf := make([]byte, 1600)
	for range 5 {
		if _, err := c.conn.WriteTo(m.Raw, c.server); err != nil {
			c.t.Fatal(err)
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, _, err := c.conn.ReadFrom(buf)
			if err != nil {
				break // retransmit
			}
			resp := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if resp.Decode() == nil && resp.TransactionID == m.TransactionID {
				return resp
			}
		}
	}
	c.t.Fatalf("no response to %v", m.Type)
	return nil
}

// errorCode returns the ERROR-CODE of a response, or 0 for a success.
func errorCode(m *stun.Message) int {
	var code stun.ErrorCodeAttribute
	if code.GetFrom(m) != nil {
		return 0
	}
	return int(code.Code)
}

// xorPeer is an XOR-PEER-ADDRESS; family6 writes an IPv4 address in its
// IPv4-mapped IPv6 form, which pion's encoder never does.
type xorPeer struct {
	ip      netip.Addr
	port    int
	family6 bool
}

func (p xorPeer) AddTo(m *stun.Message) error {
	if !p.family6 {
		return (&stun.XORMappedAddress{IP: net.IP(p.ip.AsSlice()), Port: p.port}).AddToAs(m, stun.AttrXORPeerAddress)
	}
	var key [16]byte
	key[0], key[1], key[2], key[3] = 0x21, 0x12, 0xA4, 0x42
	copy(key[4:], m.TransactionID[:])
	ip := p.ip.As16()
	v := make([]byte, 20)
	v[1] = 0x02
	v[2], v[3] = byte(p.port>>8)^0x21, byte(p.port)^0x12
	for i := range ip {
		v[4+i] = ip[i] ^ key[i]
	}
	m.Add(stun.AttrXORPeerAddress, v)
	return nil
}

func channelNumber(n uint16) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(n >> 8), byte(n), 0, 0}}
}

func lifetime(seconds uint32) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{byte(seconds >> 24), byte(seconds >> 16), byte(seconds >> 8), byte(seconds)}}
}

func udpPeer(t *testing.T, a net.Addr) xorPeer {
	t.Helper()
	ap := a.(*net.UDPAddr).AddrPort()
	return xorPeer{ip: ap.Addr().Unmap(), port: int(ap.Port())}
}
