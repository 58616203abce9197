package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/openconsult/openconsult/media/wire"
)

// wireNet is what every session on the node's own transport shares: the
// UDP port, with its ICE-TCP listener if any, the DTLS certificate, and
// the candidates every answer and offer of the node's names.
type wireNet struct {
	port       *wire.Port
	cert       wire.Certificate
	candidates []string
	udp        net.Addr
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
// its ICE-TCP address when set; the shared socket is read and written in
// batches and holds bursts (socks), as pion's shared port is.
func listenWire(cfg *Config, socks *udpSockets) (*wireNet, error) {
	if cfg.UDPListen == "" {
		return nil, errors.New("own transport: a UDP listen address is needed")
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.UDPListen)
	if err != nil {
		return nil, fmt.Errorf("udp listen %q: %w", cfg.UDPListen, err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("udp listen %q: %w", cfg.UDPListen, err)
	}
	_ = conn.SetReadBuffer(socketBuffer) // best effort, as for pion's port
	_ = conn.SetWriteBuffer(socketBuffer)
	var sock wire.PacketConn = conn
	if c, ok := socks.add(newBatchConn(conn)).(addrPortConn); ok {
		sock = batchSocket{c}
	}
	cert, err := wire.NewCertificate()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("own transport: %w", err)
	}
	n := &wireNet{port: wire.NewPort(sock, cfg.Log), cert: cert, udp: conn.LocalAddr()}
	if cfg.TCPListen != "" {
		ln, err := net.Listen("tcp", cfg.TCPListen)
		if err == nil {
			err = n.port.ServeTCP(ln)
		}
		if err != nil {
			_ = n.port.Close()
			return nil, fmt.Errorf("tcp listen %q: %w", cfg.TCPListen, err)
		}
		n.tcp = ln.Addr()
	}
	if n.candidates, err = wireCandidates(cfg.PublicIPs, n.udp, n.tcp); err != nil {
		_ = n.port.Close()
		return nil, err
	}
	return n, nil
}

// Close closes the port and its ICE-TCP listener.
func (n *wireNet) Close() error { return n.port.Close() }

// wireCandidates are the node's host candidates: PublicIPs when set (a
// node behind a 1:1 NAT), else the listening address, or every address
// of the host's for an unspecified one; on UDP, and on ICE-TCP as a
// passive candidate.
func wireCandidates(publicIPs []string, udp, tcp net.Addr) ([]string, error) {
	var out []string
	add := func(a net.Addr, proto string, prio int, suffix string) error {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return fmt.Errorf("own transport: address %s: %w", a, err)
		}
		ips, err := advertised(publicIPs, ap.Addr())
		if err != nil {
			return err
		}
		for i, ip := range ips {
			out = append(out, fmt.Sprintf("candidate:%d 1 %s %d %s %d typ host%s", len(out)+1, proto, prio-i<<8, ip, ap.Port(), suffix))
		}
		return nil
	}
	if err := add(udp, "udp", udpHostPriority, ""); err != nil {
		return nil, err
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
