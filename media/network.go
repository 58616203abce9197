package media

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// listen applies the network part of cfg to its SettingEngine: every peer
// connection shares one UDP port (UDPListen) and one passive ICE-TCP port
// (TCPListen), which is what a firewall or a Kubernetes service can
// expose, and advertises PublicIPs instead of the host's own addresses
// when the node sits behind a 1:1 NAT. It returns the listeners, which
// SFU.Close closes. The shared UDP sockets that hold bursts go to socks.
func listen(cfg *Config, socks *udpSockets) ([]io.Closer, error) {
	var closers []io.Closer
	fail := func(err error) ([]io.Closer, error) {
		for _, c := range closers {
			_ = c.Close()
		}
		return nil, err
	}
	logger := cfg.Settings.LoggerFactory.NewLogger("ice")
	if cfg.UDPListen != "" {
		addr, err := net.ResolveUDPAddr("udp", cfg.UDPListen)
		if err != nil {
			return fail(fmt.Errorf("udp listen %q: %w", cfg.UDPListen, err))
		}
		var mux ice.UDPMux
		if addr.IP == nil || addr.IP.IsUnspecified() {
			// One socket per local address, so that each host candidate
			// names an address the packets really arrive on.
			n, err := stdnet.NewNet()
			if err != nil {
				return fail(fmt.Errorf("udp listen %q: %w", cfg.UDPListen, err))
			}
			m, err := ice.NewMultiUDPMuxFromPort(addr.Port, ice.UDPMuxFromPortWithLogger(logger), ice.UDPMuxFromPortWithNet(batchNet{n, socks}),
				ice.UDPMuxFromPortWithReadBufferSize(socketBuffer), ice.UDPMuxFromPortWithWriteBufferSize(socketBuffer))
			if err != nil {
				return fail(fmt.Errorf("udp listen %q: %w", cfg.UDPListen, err))
			}
			mux = m
		} else {
			conn, err := net.ListenUDP("udp", addr)
			if err != nil {
				return fail(fmt.Errorf("udp listen %q: %w", cfg.UDPListen, err))
			}
			// Best effort: the kernel caps it at net.core.rmem_max.
			_ = conn.SetReadBuffer(socketBuffer)
			_ = conn.SetWriteBuffer(socketBuffer)
			mux = ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: logger, UDPConn: socks.add(newBatchConn(conn))})
		}
		closers = append(closers, mux)
		cfg.Settings.SetICEUDPMux(mux)
	}
	if cfg.TCPListen != "" {
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

// batchNet is the host's network, with the shared UDP sockets read and
// written in batches (udpbatch_linux.go).
type batchNet struct {
	transport.Net
	socks *udpSockets
}

func (n batchNet) ListenUDP(network string, addr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, addr)
	if err != nil {
		return nil, err
	}
	u, ok := c.(*net.UDPConn)
	if !ok {
		return c, nil
	}
	if b, ok := n.socks.add(newBatchConn(u)).(transport.UDPConn); ok {
		return b, nil
	}
	return c, nil
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
		case *ice.UDPMuxDefault:
			addrs = append(addrs, m.LocalAddr())
		case *ice.MultiUDPMuxDefault:
			addrs = append(addrs, m.GetListenAddresses()...)
		case *ice.TCPMuxDefault:
			addrs = append(addrs, m.LocalAddr())
		}
	}
	return addrs
}
