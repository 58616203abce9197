package relay

import (
	"errors"
	"net"
	"sync"
)

// peerListener is a TCP allocation's listener (RFC 6062): a connection
// from a peer the policy refuses is closed as it is accepted, before pion
// tells the client of it. pion closes any other peer without a permission.
type peerListener struct {
	net.Listener
	s *relaySockets
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		from, ok := c.RemoteAddr().(*net.TCPAddr)
		if !ok {
			_ = c.Close()
			continue
		}
		if allowed, class := l.s.policy.Check(from.AddrPort().Addr()); !allowed {
			l.s.refused(class)
			_ = c.Close()
			continue
		}
		return &peerConn{Conn: c, s: l.s}, nil
	}
}

// peerConn is a TCP allocation's connection with a peer; it counts the
// bytes relayed. The bandwidth caps do not apply to it: TCP slows a sender
// down rather than losing its data.
type peerConn struct {
	net.Conn
	s    *relaySockets
	once sync.Once
}

func (c *peerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.s.metrics.fromPeerBytes.Add(float64(n))
	}
	return n, err
}

func (c *peerConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.s.metrics.toPeerBytes.Add(float64(n))
	}
	return n, err
}

func (c *peerConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() { err = c.Conn.Close() })
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
