package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/turn/v5"

	"github.com/openconsult/openconsult/internal/browsertest"
	"github.com/openconsult/openconsult/relay"
)

func TestRelayURLsComeFromTheListeners(t *testing.T) {
	udp := &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 3478}
	tests := []struct {
		name   string
		public string
		tls    net.Addr
		shared bool
		want   string // the turns: URL, "" for none
	}{
		{"shared HTTPS port, default 443", "https://consult.example-hospital.org", nil, true, "turns:consult.example-hospital.org:443?transport=tcp"},
		{"shared HTTPS port, explicit port", "https://localhost:8443", nil, true, "turns:localhost:8443?transport=tcp"},
		{"own TLS listener keeps its own port", "https://consult.example-hospital.org", &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 5349}, false, "turns:consult.example-hospital.org:5349?transport=tcp"},
		{"no TLS", "https://consult.example-hospital.org", nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := url.Parse(tt.public)
			stun, turn := relayURLs(u, []net.Addr{udp}, tt.tls, tt.shared)
			if !slices.Equal(stun, []string{"stun:198.51.100.7:3478"}) {
				t.Errorf("stun %v", stun)
			}
			want := []string{"turn:198.51.100.7:3478?transport=udp", "turn:198.51.100.7:3478?transport=tcp"}
			if tt.want != "" {
				want = append(want, tt.want)
			}
			if !slices.Equal(turn, want) {
				t.Errorf("turn %v, want %v", turn, want)
			}
		})
	}
}

func TestRelayURLsThatCannotReachTheRelayAreRefused(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // empty: accepted
	}{
		{"TLS relay on the HTTPS port without sharing", []string{"-relay-listen", "198.51.100.7:3478", "-relay-tls-listen", "198.51.100.7:443"}, []string{"-relay-tls-listen", "HTTPS port", "-relay-on-https-port"}},
		{"TLS relay on another address, automatic URL", []string{"-relay-listen", "198.51.100.8:3478", "-relay-tls-listen", "198.51.100.8:443"}, []string{"-relay-tls-listen", "-turn-url"}},
		{"TLS relay on another address with its own URL", []string{"-relay-listen", "198.51.100.8:3478", "-relay-tls-listen", "198.51.100.8:443",
			"-turn-url", "turns:turn.example-hospital.org:443?transport=tcp", "-turn-secret", "a shared secret of the relay"}, nil},
		{"TLS relay on the site's address, its own port", []string{"-relay-listen", "198.51.100.7:3478", "-relay-tls-listen", "198.51.100.7:5349"}, nil},
		{"TLS relay on every address", []string{"-relay-listen", "198.51.100.7:3478", "-relay-tls-listen", ":5349"}, nil},
		{"shared port", []string{"-relay-listen", "198.51.100.7:3478", "-relay-on-https-port"}, nil},
		{"shared port without the relay", []string{"-relay-on-https-port"}, []string{"-relay-on-https-port", "-relay-listen"}},
		{"shared port and a TLS listener", []string{"-relay-listen", "198.51.100.7:3478", "-relay-on-https-port", "-relay-tls-listen", ":5349"}, []string{"-relay-on-https-port", "not both"}},
		{"hand-written turns: URL at the site", []string{"-turn-url", "turns:consult.example-hospital.org:443?transport=tcp", "-turn-secret", "a shared secret of the relay"}, []string{"-turn-url", "site's own address"}},
		{"hand-written turns: URL at the site, default port", []string{"-turn-url", "turns:consult.example-hospital.org?transport=tcp", "-turn-secret", "x", "-listen", ":5349", "-public-url", "https://consult.example-hospital.org:5349"}, []string{"-turn-url", "site's own address"}},
		{"dev on every address keeps its loopback TLS relay", []string{"-dev", "-listen", "0.0.0.0:8443"}, nil},
		{"dev with a TLS relay on another address", []string{"-dev", "-listen", "0.0.0.0:8443", "-relay-tls-listen", "192.0.2.1:5349"}, []string{"-relay-tls-listen", "-turn-url"}},
		{"hand-written turns: URL at the relay's name", []string{"-turn-url", "turns:turn.example-hospital.org:443?transport=tcp", "-turn-secret", "x"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { loadProd(t, tt.args, nil, tt.want) })
	}
}

const sharedSecret = "secret of the relay on the HTTPS port"

// startShared runs signal -dev with the embedded relay on the HTTPS port
// and returns it with the turns: URL it gives browsers.
func startShared(t *testing.T, dir string) (*devServer, string) {
	t.Helper()
	d := startDev(t, dir, "-relay-tls-listen", "off", "-relay-on-https-port", "-turn-secret", sharedSecret)
	t.Cleanup(func() { d.stop() })
	u, _ := url.Parse(d.public)
	want := "turns:localhost:" + u.Port() + "?transport=tcp"
	var urls string
	for _, line := range logLines(t, d.stderr.String()) {
		if line["msg"] == "relay URLs given to browsers" {
			urls = line["urls"].(string)
		}
	}
	if !slices.Contains(strings.Fields(urls), want) {
		t.Fatalf("browsers get %q, want %s among them", urls, want)
	}
	return d, want
}

func TestSharedHTTPSPortServesSiteAndRelay(t *testing.T) {
	dir := t.TempDir()
	d, _ := startShared(t, dir)
	pem, err := os.ReadFile(filepath.Join(dir, "tls", "dev-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	resp, err := h2.Get(d.public + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h2.CloseIdleConnections()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("/healthz on the shared port = %d %s %q", resp.StatusCode, resp.Proto, body)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); hsts == "" {
		t.Fatal("no HSTS on the shared port")
	}

	// TURN over TLS on the same port, checked against the development
	// certificate for the site's name.
	u, _ := url.Parse(d.public)
	c, err := tls.Dial("tcp", "127.0.0.1:"+u.Port(), &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() }) // after the client's
	user, pass := relay.MintCredential([]byte(sharedSecret), "patient-1", time.Hour, time.Now())
	relayed := allocate(t, turn.ClientConfig{TURNServerAddr: c.RemoteAddr().String(), Conn: turn.NewSTUNConn(c), Username: user, Password: pass})
	sendToPeer(t, relayed, "media")
	if err := d.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// TestBrowserGathersRelayCandidateOverTLSOnTheHTTPSPort gives Chromium only
// the turns: URL of the shared port with a relay-only policy: a relay
// candidate over TLS proves browsers reach the relay through port 443
// alone.
func TestBrowserGathersRelayCandidateOverTLSOnTheHTTPSPort(t *testing.T) {
	d, turnsURL := startShared(t, t.TempDir())
	ctx := browsertest.New(t)
	user, pass := relay.MintCredential([]byte(sharedSecret), "patient-2", time.Hour, time.Now())
	if err := chromedp.Do(ctx, chromedp.Navigate(d.public+"/healthz")); err != nil {
		t.Fatal(err)
	}
	js := `(async () => {
  const pc = new RTCPeerConnection({iceTransportPolicy: "relay", iceServers: [{urls: ` + quoteJS(turnsURL) + `, username: ` + quoteJS(user) + `, credential: ` + quoteJS(pass) + `}]});
  pc.createDataChannel("probe");
  const found = new Promise((resolve) => {
    pc.onicecandidate = (e) => { if (!e.candidate) resolve(""); else if (e.candidate.type === "relay") resolve(e.candidate.candidate); };
    setTimeout(() => resolve("timeout"), 15000);
  });
  await pc.setLocalDescription(await pc.createOffer());
  const cand = await found;
  let protocol = "";
  for (const s of (await pc.getStats()).values()) if (s.type === "local-candidate" && s.candidateType === "relay") protocol = s.relayProtocol;
  pc.close();
  return cand + " | " + protocol;
})()`
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`typ relay .*\| tls$`).MatchString(got) {
		t.Fatalf("no relay candidate over TLS on the HTTPS port: %q", got)
	}
}

// quoteJS is s as a JavaScript string literal.
func quoteJS(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestCheckValidatesWithoutStarting(t *testing.T) {
	cert, key := localhostCert(t)
	base := []string{"-check", "-public-url", "https://consult.example-hospital.org", "-master-key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"-data-dir", t.TempDir(), "-listen", "198.51.100.7:443"}
	tests := []struct {
		name string
		args []string
		out  string // printed on success
		err  []string
	}{
		{"shared port", []string{"-tls-cert", cert, "-tls-key", key, "-relay-listen", "198.51.100.7:3478", "-relay-on-https-port"}, "turns: at the -public-url host and port, shared with HTTPS", nil},
		{"certificate file missing", []string{"-tls-cert", cert + ".gone", "-tls-key", key, "-relay-listen", "198.51.100.7:3478", "-relay-on-https-port"}, "", []string{"-tls-cert"}},
		{"TLS relay on the HTTPS port", []string{"-tls-cert", cert, "-tls-key", key, "-relay-listen", "198.51.100.7:3478", "-relay-tls-listen", "198.51.100.7:443"}, "", []string{"-relay-tls-listen", "-relay-on-https-port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := run(context.Background(), append(slices.Clone(base), tt.args...), func(string) string { return "" }, &out, io.Discard)
			if tt.err == nil {
				if err != nil || !strings.Contains(out.String(), "configuration valid") || !strings.Contains(out.String(), tt.out) {
					t.Fatalf("-check = %v, printed %q", err, out.String())
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, printed %q", out.String())
			}
			for _, w := range tt.err {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// A TURN client that sends no server name (one given an address) gets the
// certificate of the site's host name, the name in the turns: URL.
func TestSharedPortAnswersClientsWithoutSNIForTheSiteName(t *testing.T) {
	cert, err := tls.LoadX509KeyPair(localhostCert(t))
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan string, 4)
	site := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		asked <- h.ServerName
		return &cert, nil
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public, _ := url.Parse("https://consult.example-hospital.org")
	mux, err := shareHTTPSPort(ln, site, public, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	for _, tc := range []struct{ serverName, want string }{
		{"", "consult.example-hospital.org"},
		{"other.example.org", "other.example.org"},
	} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: tc.serverName, InsecureSkipVerify: true}) // only the name asked matters here
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if got := <-asked; got != tc.want {
			t.Errorf("client sending %q: certificate asked for %q, want %q", tc.serverName, got, tc.want)
		}
	}
}
