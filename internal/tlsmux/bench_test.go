package tlsmux_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkNewHTTPSConnection opens a TLS connection and makes one
// HTTP/1.1 request on it, against an http.Server that does the handshake
// itself (direct) and one behind the Mux (shared), told apart by ALPN or
// by the first bytes: the cost of sharing the port with TURN, per
// connection.
func BenchmarkNewHTTPSConnection(b *testing.B) {
	for _, tc := range []struct {
		name   string
		shared bool
		protos []string
	}{
		{"direct", false, []string{"http/1.1"}},
		{"shared-alpn", true, []string{"http/1.1"}},
		{"shared-first-bytes", true, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := startBenchServer(b, tc.shared, tc.protos)
			b.ResetTimer()
			for b.Loop() {
				c, err := tls.Dial("tcp", p.addr, p.client)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				c.Close()
			}
		})
	}
}

type benchServer struct {
	addr   string
	client *tls.Config
}

func startBenchServer(b *testing.B, shared bool, protos []string) *benchServer {
	p := startSharedPort(b, 0)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), TLSConfig: p.serverTLS}
	if shared {
		return &benchServer{addr: p.mux.Addr().String(), client: p.tlsConfig(protos...)}
	}
	ln := listenLoopback(b)
	go srv.ServeTLS(ln, "", "")
	b.Cleanup(func() { srv.Close() })
	return &benchServer{addr: ln.Addr().String(), client: p.tlsConfig(protos...)}
}
