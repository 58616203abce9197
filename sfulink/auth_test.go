package sfulink

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/internal/testpki"
	"github.com/openconsult/openconsult/media"
)

// dialRaw opens a link WebSocket without the Client, to see exactly what
// the node accepts.
func dialRaw(t *testing.T, url string, cfg *tls.Config) (*websocket.Conn, error) {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: cfg, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	// With TLS 1.3 the client finishes its handshake before the server
	// checks the client's certificate; a refusal shows on the first read.
	_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil {
		ws.Close()
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Time{})
	return ws, nil
}

func TestLinkRefusesUnauthenticatedPeers(t *testing.T) {
	good := newPKI(t)
	other := testpki.NewCA(t, "other")
	otherClientCert, otherClientKey := other.Issue(t, "intruder", false)
	otherNodeCert, otherNodeKey := other.Issue(t, "rogue-node", true)

	withCert := func(certFile, keyFile, caFile string) *tls.Config {
		cfg, err := ClientTLS(certFile, keyFile, caFile)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	noCert := withCert(good.SignalCert, good.SignalKey, good.CA.File)
	noCert.GetClientCertificate = nil

	tests := []struct {
		name     string
		nodeCert string // "" for the good node
		nodeKey  string
		client   *tls.Config
		ok       bool
	}{
		{"signal certificate of the link CA", "", "", withCert(good.SignalCert, good.SignalKey, good.CA.File), true},
		{"no client certificate", "", "", noCert, false},
		{"client certificate of another CA", "", "", withCert(otherClientCert, otherClientKey, good.CA.File), false},
		{"node certificate of another CA", otherNodeCert, otherNodeKey, withCert(good.SignalCert, good.SignalKey, good.CA.File), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n *testNode
			if tt.nodeCert == "" {
				n = startNode(t, good, 0)
			} else {
				cfg, err := ServerTLS(tt.nodeCert, tt.nodeKey, good.CA.File)
				if err != nil {
					t.Fatal(err)
				}
				n = startNodeTLS(t, cfg, 0)
			}
			ws, err := dialRaw(t, n.url, tt.client)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				ws.Close()
				return
			}
			if err == nil {
				ws.Close()
				t.Fatal("an unauthenticated peer got a link")
			}
			if n.srv.Links() != 0 {
				t.Fatalf("%d links open", n.srv.Links())
			}
			if tt.client.GetClientCertificate == nil {
				return // NewClient refuses such a configuration itself
			}
			c := newTestClient(t, n.url, tt.client)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if _, err := c.Join(ctx, "c_1", "m_1", newRecorder()); !errors.Is(err, media.ErrUnavailable) {
				t.Fatalf("join through a refused link = %v, want ErrUnavailable", err)
			}
			if l := n.sfu.Load(); l.Participants != 0 {
				t.Fatalf("a refused peer joined: %+v", l)
			}
		})
	}
}

func TestNewClientNeedsACertificate(t *testing.T) {
	good := newPKI(t)
	cfg := clientTLS(t, good)
	cfg.GetClientCertificate = nil
	if _, err := NewClient(t.Context(), ClientConfig{URL: "wss://127.0.0.1:7443/", TLS: cfg}); err == nil {
		t.Fatal("a client without a certificate was made")
	}
	if _, err := NewClient(t.Context(), ClientConfig{URL: "ws://127.0.0.1:7443/", TLS: clientTLS(t, good)}); err == nil {
		t.Fatal("a plain ws:// link was accepted")
	}
}

// TestHandlerRefusesWithoutVerifiedCertificate: a link listener configured
// without client authentication by mistake still admits nobody.
func TestHandlerRefusesWithoutVerifiedCertificate(t *testing.T) {
	good := newPKI(t)
	cfg, err := ServerTLS(good.NodeCert, good.NodeKey, good.CA.File)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ClientAuth = tls.NoClientCert
	n := startNodeTLS(t, cfg, 0)
	client := clientTLS(t, good)
	client.GetClientCertificate = nil
	_, err = dialRaw(t, n.url, client)
	if err == nil || !strings.Contains(err.Error(), "bad handshake") {
		t.Fatalf("dial = %v, want a refused upgrade", err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: client}}).Get("https" + strings.TrimPrefix(n.url, "wss"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
}
