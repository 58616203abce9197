package wire

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// BenchmarkForwardOnPort measures the node's packet path on its own
// transport from socket to socket: a publisher's SRTP read from the
// shared port, decrypted, and written re-encrypted to two subscribers,
// as in a consult of three. "relay" is the same socket work without
// SRTP, a relay's floor: one read and two writes per packet. ns/op is
// per packet received; each is forwarded twice.
func BenchmarkForwardOnPort(b *testing.B) {
	b.Run("relay", func(b *testing.B) { benchForward(b, false) })
	b.Run("wire", func(b *testing.B) { benchForward(b, true) })
}

// forwarder is the handler of the publisher's connection: each packet
// to both subscribers, with their SSRC.
type forwarder struct {
	subs [2]*Conn
	hdr  rtp.Header
	done atomic.Int64
}

func (f *forwarder) RTP(p []byte, h *rtp.Header) {
	f.hdr = *h
	payload := p[h.MarshalSize():]
	for i, s := range f.subs {
		f.hdr.SSRC = uint32(100 + i)
		_ = s.WriteRTP(&f.hdr, payload)
	}
	f.done.Add(1)
}

func (f *forwarder) RTCP([]byte) {}

func benchForward(b *testing.B, useSRTP bool) {
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadBuffer(4 << 20)
		return c
	}
	node, pubSock, sink := listen(), listen(), listen()
	defer pubSock.Close()
	defer sink.Close()
	sinkAddr := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	pubAddr := pubSock.LocalAddr().(*net.UDPAddr).AddrPort()
	// Nothing reads the subscribers' socket: what it cannot hold the
	// kernel drops once written, which is all the benchmark needs.

	var delivered func() int64
	if useSRTP {
		port := NewPort(node, nil)
		defer port.Close()
		f := &forwarder{}
		pub := benchConn(b, port, f)
		for i := range f.subs {
			f.subs[i] = benchConn(b, port, f)
			f.subs[i].ice.selected = sinkAddr
		}
		pub.ice.selected = pubAddr
		port.mu.Lock()
		port.byAddr[pubAddr] = pub
		port.mu.Unlock()
		delivered = f.done.Load
	} else {
		var n atomic.Int64
		go func() { // the bare relay; ends when node closes
			buf := make([]byte, 2048)
			for {
				k, _, err := node.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				_, _ = node.WriteToUDPAddrPort(buf[:k], sinkAddr)
				_, _ = node.WriteToUDPAddrPort(buf[:k], sinkAddr)
				n.Add(1)
			}
		}()
		defer node.Close()
		delivered = n.Load
	}

	packets := encryptedPackets(b, 4096)
	to := node.LocalAddr().(*net.UDPAddr).AddrPort()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the publisher, faster than the node reads: the node's reader never waits
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = pubSock.WriteToUDPAddrPort(packets[i%len(packets)], to)
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	start := delivered()
	for delivered()-start < int64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(b.N*2)/b.Elapsed().Seconds(), "forwarded/s")
}

// benchConn is a connection on port with the benchmark's SRTP keys, as
// a handshake would leave it.
func benchConn(b *testing.B, port *Port, h Handler) *Conn {
	b.Helper()
	cert, err := NewCertificate()
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{Local: testLocal, Certificate: cert, Send: port.Send, Handler: h})
	if err != nil {
		b.Fatal(err)
	}
	key, salt := make([]byte, 16), make([]byte, 12)
	// Without replay protection: the benchmark sends its packets again.
	if c.rx.ctx, err = srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm, srtp.SRTPNoReplayProtection()); err != nil {
		b.Fatal(err)
	}
	if c.tx.ctx, err = srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm); err != nil {
		b.Fatal(err)
	}
	c.ready.Store(true)
	return c
}

// encryptedPackets are n video packets of 1,100 bytes in SRTP.
func encryptedPackets(b *testing.B, n int) [][]byte {
	b.Helper()
	key, salt := make([]byte, 16), make([]byte, 12)
	ctx, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		b.Fatal(err)
	}
	out := make([][]byte, n)
	payload := make([]byte, 1100)
	for i := range out {
		p, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i), SSRC: 7}, Payload: payload}).Marshal()
		if out[i], err = ctx.EncryptRTP(nil, p, nil); err != nil {
			b.Fatal(err)
		}
	}
	return out
}
