package media

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// listen applies the network part of cfg to its SettingEngine: every peer
// connection shares one UDP port (UDPListen) and one passive ICE-TCP port
// (TCPListen), which is what a firewall or a Kubernetes service can
// expose, and advertises PublicIPs instead of the host's own addresses
// when the node sits behind a 1:1 NAT. It returns the listeners, which
// SFU.Close closes. Datagrams queue for their connections in bufs; the
// shared UDP sockets that hold bursts go to socks.
func listen(cfg *Config, bufs srtpBuffers, socks *udpSockets) ([]io.Closer, error) {
	var closers []io.Closer
	fail := func(err error) ([]io.Closer, error) {
		for _, c := range closers {
			_ = c.Close()
		}
		return nil, err
	}
	logger := cfg.Settings.LoggerFactory.NewLogger("ice")
	// With OwnTransport the node's own transport listens (wirenet.go).
	if cfg.UDPListen != "" && !cfg.OwnTransport {
		addr, err := net.ResolveUDPAddr("udp", cfg.UDPListen)
		if err != nil {
			return fail(fmt.Errorf("udp listen %q: %w", cfg.UDPListen, err))
		}
		mux, err := listenUDP(addr, bufs, socks)
		if err != nil {
			return fail(fmt.Errorf("udp listen %q: %w", cfg.UDPListen, err))
		}
		closers = append(closers, mux)
		cfg.Settings.SetICEUDPMux(mux)
	}
	if cfg.TCPListen != "" && !cfg.OwnTransport {
		ln, err := net.Listen("tcp", cfg.TCPListen)
		if err != nil {
			return fail(fmt.Errorf("tcp listen %q: %w", cfg.TCPListen, err))
		}
		mux := webrtc.NewICETCPMux(logger, ln, 32)
		closers = append(closers, mux)
		cfg.Settings.SetICETCPMux(mux)
		cfg.Settings.SetNetworkTypes(withTCP(ln.Addr().(*net.TCPAddr)))
	}
	if len(cfg.PublicIPs) > 0 {
		for _, ip := range cfg.PublicIPs {
			if net.ParseIP(ip) == nil {
				return fail(fmt.Errorf("public ip %q: %w", ip, errNotAnIP))
			}
		}
		// Replace, not append: the private address is useless to a browser
		// outside, and advertising it only adds failing checks.
		if err := cfg.Settings.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return fail(fmt.Errorf("public ips: %w", err))
		}
	}
	return closers, nil
}

// listenUDP opens the shared UDP port: one socket on addr, or, when
// addr's IP is unspecified, one per address of the host's interfaces, so
// that each host candidate names an address the packets really arrive
// on. Each socket is read and written in batches (udpbatch_linux.go).
func listenUDP(addr *net.UDPAddr, bufs srtpBuffers, socks *udpSockets) (ice.UDPMux, error) {
	if addr.IP != nil && !addr.IP.IsUnspecified() {
		return listenUDPMux(addr, bufs, socks)
	}
	ips, err := hostAddrs()
	if err != nil {
		return nil, err
	}
	muxes := make([]ice.UDPMux, 0, len(ips))
	for _, ip := range ips {
		m, err := listenUDPMux(net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(addr.Port))), bufs, socks)
		if err != nil {
			for _, m := range muxes {
				_ = m.Close()
			}
			return nil, err
		}
		muxes = append(muxes, m)
	}
	return ice.NewMultiUDPMuxDefault(muxes...), nil
}

func listenUDPMux(addr *net.UDPAddr, bufs srtpBuffers, socks *udpSockets) (*udpMux, error) {
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, err
	}
	// Best effort: the kernel caps it at net.core.rmem_max.
	_ = conn.SetReadBuffer(socketBuffer)
	_ = conn.SetWriteBuffer(socketBuffer)
	c, ok := socks.add(newBatchConn(conn)).(addrPortConn)
	if !ok {
		c = plainConn{conn}
	}
	return newUDPMux(c, bufs), nil
}

// plainConn is a UDP socket read and written one datagram at a time.
type plainConn struct{ *net.UDPConn }

func (c plainConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.ReadFromUDPAddrPort(b)
}

func (c plainConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.WriteToUDPAddrPort(b, addr)
}

// hostAddrs are the addresses of the host's interfaces that are up,
// without loopback, as pion's ICE gathers them: no IPv4-compatible or
// site-local IPv6 addresses, link-local ones with their interface as zone.
func hostAddrs() ([]netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("interfaces: %w", err)
	}
	var out []netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok || ip.IsLoopback() {
				continue
			}
			ip = ip.Unmap()
			if ip.Is6() {
				b := ip.As16()
				if [12]byte(b[:12]) == [12]byte{} || (b[0] == 0xfe && b[1]&0xc0 == 0xc0) {
					continue
				}
				if ip.IsLinkLocalUnicast() {
					ip = ip.WithZone(ifc.Name)
				}
			}
			out = append(out, ip)
		}
	}
	return out, nil
}

// withTCP is the node's network types with an ICE-TCP port: UDP over
// both families, as by default, and TCP over the listener's family.
// pion's default is UDP alone, with which the node listened on its ICE-TCP
// port but never offered it, so a browser whose network drops UDP could
// not reach it.
func withTCP(addr *net.TCPAddr) []webrtc.NetworkType {
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	switch {
	case addr.IP.IsUnspecified():
		return append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	case addr.IP.To4() != nil:
		return append(types, webrtc.NetworkTypeTCP4)
	default:
		return append(types, webrtc.NetworkTypeTCP6)
	}
}

// socketBuffer is the kernel buffer asked for on the shared UDP port,
// each way. Every participant's packets queue on that one socket while its
// single reader is descheduled, where a port per participant has a buffer
// each: with the default (208 KiB) a busy node dropped incoming media in
// bursts. The kernel grants at most net.core.rmem_max and
// wmem_max (deploy/sysctl.d raises them to 4 MiB).
const socketBuffer = 4 << 20

var errNotAnIP = errors.New("not an IP address")

// listenAddrs returns the addresses of the shared UDP and ICE-TCP ports,
// for logs and for tests that listen on port 0.
func listenAddrs(closers []io.Closer) []net.Addr {
	var addrs []net.Addr
	for _, c := range closers {
		switch m := c.(type) {
		case *udpMux:
			addrs = append(addrs, m.LocalAddr())
		case *ice.MultiUDPMuxDefault:
			addrs = append(addrs, m.GetListenAddresses()...)
		case *ice.TCPMuxDefault:
			addrs = append(addrs, m.LocalAddr())
		case *wireNet:
			addrs = append(addrs, m.udp...)
			if m.tcp != nil {
				addrs = append(addrs, m.tcp)
			}
		}
	}
	return addrs
}
