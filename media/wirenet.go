package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/openconsult/openconsult/media/wire"
)

// wireNet is what every session on the node's own transport shares: the
// UDP port (a socket per address of the host's when the listening address
// is unspecified), with its ICE-TCP listener if any, the DTLS
// certificate, and the candidates every answer and offer of the node's
// names.
type wireNet struct {
	port       portSet
	cert       wire.Certificate
	candidates []string
	udp        []net.Addr
	tcp        net.Addr // nil without ICE-TCP
}

// Candidate priorities (RFC 8445 5.1.2.1): host type preference, the
// highest local preference less the candidate's index, component 1.
// ICE-TCP ranks below UDP (RFC 6544 4.2), so a browser that can use
// either takes UDP.
const (
	udpHostPriority = 126<<24 | 65535<<8 | 255
	tcpHostPriority = 126<<24 | 32767<<8 | 255
)

// listenWire opens the node's own transport on cfg's UDP address, and on
// its ICE-TCP address when set; each UDP socket is read and written in
// batches and holds bursts (socks), as pion's shared port's are.
func listenWire(cfg *Config, socks *udpSockets) (*wireNet, error) {
	if cfg.UDPListen == "" {
		return nil, errors.New("own transport: a UDP listen address is needed")
	}
	addrs, err := wireSocketAddrs(cfg.UDPListen, len(cfg.PublicIPs) > 0)
	if err != nil {
		return nil, err
	}
	cert, err := wire.NewCertificate()
	if err != nil {
		return nil, fmt.Errorf("own transport: %w", err)
	}
	n := &wireNet{cert: cert}
	for _, a := range addrs {
		p, local, err := listenWirePort(a, socks, cfg)
		if err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("udp listen %q: %w", cfg.UDPListen, err)
		}
		n.port, n.udp = append(n.port, p), append(n.udp, local)
	}
	if cfg.TCPListen != "" {
		ln, err := net.Listen("tcp", cfg.TCPListen)
		if err == nil {
			err = n.port[0].ServeTCP(ln)
		}
		if err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("tcp listen %q: %w", cfg.TCPListen, err)
		}
		n.tcp = ln.Addr()
	}
	if n.candidates, err = wireCandidates(cfg.PublicIPs, n.udp, n.tcp); err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

// wireSocketAddrs are the addresses the UDP sockets listen on: listen's,
// or, when its IP is unspecified, each address of the host's with its
// port, as pion's shared port does, so that a reply leaves from the
// address the browser sent its check to (a browser drops one from any
// other). A node behind 1:1 NAT (nat) keeps the one socket: its public
// addresses are advertised instead.
func wireSocketAddrs(listen string, nat bool) ([]*net.UDPAddr, error) {
	addr, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("udp listen %q: %w", listen, err)
	}
	if nat || addr.IP != nil && !addr.IP.IsUnspecified() {
		return []*net.UDPAddr{addr}, nil
	}
	bound := netip.IPv6Unspecified() // ":port" listens on both families
	if ip, ok := netip.AddrFromSlice(addr.IP); ok {
		bound = ip.Unmap()
	}
	ips, err := advertised(nil, bound)
	if err != nil {
		return nil, err
	}
	out := make([]*net.UDPAddr, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(addr.Port))))
	}
	if len(out) == 0 {
		return nil, errors.New("own transport: the host has no address to listen on")
	}
	return out, nil
}

// listenWirePort opens one UDP socket of the port.
func listenWirePort(addr *net.UDPAddr, socks *udpSockets, cfg *Config) (*wire.Port, net.Addr, error) {
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetReadBuffer(socketBuffer) // best effort, as for pion's port
	_ = conn.SetWriteBuffer(socketBuffer)
	var sock wire.PacketConn = conn
	if c, ok := socks.add(newBatchConn(conn)).(addrPortConn); ok {
		sock = batchSocket{c}
	}
	return wire.NewPort(sock, cfg.Log), conn.LocalAddr(), nil
}

// Close closes the sockets and the ICE-TCP listener.
func (n *wireNet) Close() error {
	var errs []error
	for _, p := range n.port {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// portSet is the node's shared port as a connection uses it: one
// wire.Port per socket, every connection routed on each, and each
// datagram sent from the socket its destination's checks came to.
type portSet []*wire.Port

func (ps portSet) LocalAddr() net.Addr { return ps[0].LocalAddr() }

// Send writes b from the socket to's checks arrived on; to an address
// not routed (yet, or any more), from the first socket of its family.
func (ps portSet) Send(b []byte, to netip.AddrPort) error {
	if len(ps) == 1 {
		return ps[0].Send(b, to)
	}
	for _, p := range ps {
		if p.Routes(to) {
			return p.Send(b, to)
		}
	}
	v4 := to.Addr().Unmap().Is4()
	for _, p := range ps {
		if a, ok := p.LocalAddr().(*net.UDPAddr); ok && (a.IP.To4() != nil) == v4 {
			return p.Send(b, to)
		}
	}
	return fmt.Errorf("own transport: no socket of the family of %v", to)
}

func (ps portSet) Route(ufrag string, c *wire.Conn) error {
	for _, p := range ps {
		if err := p.Route(ufrag, c); err != nil {
			return err
		}
	}
	return nil
}

func (ps portSet) Forget(c *wire.Conn) {
	for _, p := range ps {
		p.Forget(c)
	}
}

func (ps portSet) IsTCP(addr netip.AddrPort) bool { return ps[0].IsTCP(addr) }

// wireCandidates are the node's host candidates: PublicIPs when set (a
// node behind a 1:1 NAT), else the listening address, or every address
// of the host's for an unspecified one; on UDP, and on ICE-TCP as a
// passive candidate.
func wireCandidates(publicIPs []string, udp []net.Addr, tcp net.Addr) ([]string, error) {
	var out []string
	perProto := map[string]int{}
	add := func(a net.Addr, proto string, prio int, suffix string) error {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return fmt.Errorf("own transport: address %s: %w", a, err)
		}
		ips, err := advertised(publicIPs, ap.Addr())
		if err != nil {
			return err
		}
		for _, ip := range ips {
			out = append(out, fmt.Sprintf("candidate:%d 1 %s %d %s %d typ host%s", len(out)+1, proto, prio-perProto[proto]<<8, ip, ap.Port(), suffix))
			perProto[proto]++
		}
		return nil
	}
	for _, a := range udp {
		if err := add(a, "udp", udpHostPriority, ""); err != nil {
			return nil, err
		}
	}
	if tcp != nil {
		if err := add(tcp, "tcp", tcpHostPriority, " tcptype passive"); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, errors.New("own transport: no address to advertise")
	}
	return out, nil
}

// advertised is the addresses a socket on bound is reached at.
func advertised(publicIPs []string, bound netip.Addr) ([]netip.Addr, error) {
	if len(publicIPs) > 0 {
		out := make([]netip.Addr, 0, len(publicIPs))
		for _, s := range publicIPs {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("public ip %q: %w", s, errNotAnIP)
			}
			out = append(out, ip.Unmap())
		}
		return out, nil
	}
	bound = bound.Unmap()
	if !bound.IsUnspecified() {
		return []netip.Addr{bound}, nil
	}
	host, err := hostAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ip := range host {
		// A zone cannot be written in a candidate, and a socket on
		// 0.0.0.0 takes no IPv6.
		if ip.Zone() != "" || bound.Is4() && !ip.Is4() {
			continue
		}
		out = append(out, ip)
	}
	return out, nil
}

// batchSocket is the batching socket under the names wire.Port reads and
// writes it by.
type batchSocket struct{ addrPortConn }

func (b batchSocket) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	return b.ReadFromAddrPort(p)
}

func (b batchSocket) WriteToUDPAddrPort(p []byte, to netip.AddrPort) (int, error) {
	return b.WriteToAddrPort(p, to)
}
