package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/proxyproto"
	"github.com/openconsult/openconsult/internal/syncbuf"
	"github.com/openconsult/openconsult/internal/testpki"
)

// fromAddr is a dialer whose connections come from ip, another address
// of the loopback network than turnd's 127.0.0.1.
func fromAddr(ip string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
}

// startTurndInFront builds and runs turnd with its TLS port shared with
// the site at backend, sending it PROXY headers, and returns the shared
// address.
func startTurndInFront(t *testing.T, backend string) string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "../turnd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build turnd: %v\n%s", err, out)
	}
	ca := testpki.NewCA(t, "relay")
	cert, key := ca.IssueNamed(t, "turn.test")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "turnd"), "-listen", "127.0.0.1:0", "-tls-listen", "127.0.0.1:0",
		"-tls-cert", cert, "-tls-key", key, "-https-backend", backend, "-https-backend-proxy-protocol",
		"-metrics", "off", "-relay-ports", "40600-40700", "-log-format", "json")
	cmd.Env = append(os.Environ(), "TURND_AUTH_SECRET="+sharedSecret)
	logs := &syncbuf.Buffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("turnd's log:\n%s", logs.String())
		}
	})
	var shared string
	eventually.True(t, 30*time.Second, "turnd's TLS listener", func() bool {
		for line := range strings.Lines(logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "relay listening" {
				shared, _ = m["tls"].(string)
			}
		}
		return shared != ""
	})
	return shared
}

// turndClient is an HTTPS client of the site through turnd's port, from
// the address ip.
func turndClient(roots *x509.CertPool, shared, ip string) *http.Client {
	dial := fromAddr(ip).DialContext
	return &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) { return dial(ctx, network, shared) }}}
}

// signInsFrom returns the source addresses of the audit log's sign-in
// entries.
func signInsFrom(t *testing.T, dir string) []string {
	t.Helper()
	out, err := runTool(t, nil, "audit", "export", "-format", "csv", "-dev", "-data-dir", dir)
	if err != nil {
		t.Fatalf("audit export: %v", err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("audit export: %v\n%s", err, out)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	var from []string
	for _, r := range rows[1:] {
		if r[col["type"]] == "signin" {
			from = append(from, r[col["source_ip"]])
		}
	}
	return from
}

// turnd in front of the site (-https-backend) tells it each client's
// address in a PROXY header: the audit log records the client, not turnd,
// and each client has its own sign-in budget. A PROXY header from another
// address than turnd's is refused.
func TestSiteBehindTurndSeesTheClientAddress(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir, "-proxy-protocol-from", "127.0.0.1")
	defer d.stop()
	site := strings.TrimPrefix(d.public, "https://")
	if _, port, _ := net.SplitHostPort(site); port != "" {
		site = "127.0.0.1:" + port
	}
	shared := startTurndInFront(t, site)
	pem, err := os.ReadFile(filepath.Join(dir, "tls", "dev-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)

	post := func(c *http.Client, path string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", d.public+path, strings.NewReader(url.Values{"username": {"nobody.here"}, "password": {"not a password"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", d.public)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	first, second := turndClient(roots, shared, "127.0.0.2"), turndClient(roots, shared, "127.0.0.3")
	// Reset requests are limited per address like sign-ins, and answered
	// at once: ten a minute.
	for i := range 10 {
		if code := post(first, "/reset"); code != http.StatusOK {
			t.Fatalf("reset request %d through turnd = %d, want 200", i+1, code)
		}
	}
	if code := post(first, "/reset"); code != http.StatusTooManyRequests {
		t.Fatalf("eleventh reset request from one client through turnd = %d, want 429", code)
	}
	if code := post(second, "/reset"); code != http.StatusOK {
		t.Fatalf("another client through turnd = %d: it shares the first one's budget, so the site sees turnd's address", code)
	}
	for _, c := range []*http.Client{first, second} {
		if code := post(c, "/signin"); code == http.StatusTooManyRequests {
			t.Fatal("sign-in through turnd = 429")
		}
	}
	from := signInsFrom(t, dir)
	if !slices.Equal(from, []string{"127.0.0.2", "127.0.0.3"}) {
		t.Fatalf("the audit log records sign-ins from %q, want the clients' 127.0.0.2 and 127.0.0.3, not turnd's 127.0.0.1", from)
	}

	// A client that reaches the site directly and forges a header is
	// refused before TLS; so is turnd's address without one.
	for _, tc := range []struct {
		name, from string
		header     []byte
	}{
		{"forged header from an untrusted address", "127.0.0.4", proxyproto.AppendV2(nil, netip.MustParseAddrPort("203.0.113.9:4444"), netip.MustParseAddrPort("127.0.0.1:443"))},
		{"trusted address without a header", "127.0.0.1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := fromAddr(tc.from).Dial("tcp", site)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(tc.header); err != nil {
				t.Fatal(err)
			}
			if err := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "localhost"}).Handshake(); err == nil {
				t.Fatal("the site completed the handshake")
			}
		})
	}
	if got := signInsFrom(t, dir); len(got) != len(from) {
		t.Fatalf("refused connections reached the site: %d sign-ins, then %d", len(from), len(got))
	}
}

func TestProxyProtocolSettings(t *testing.T) {
	base := []string{"-check", "-dev", "-data-dir", t.TempDir()}
	for _, tc := range []struct {
		args []string
		want string // in the error, or in -check's summary when ok
		ok   bool
	}{
		{[]string{"-proxy-protocol-from", "10.0.0.4,10.1.0.0/24"}, "PROXY protocol from 10.0.0.4/32,10.1.0.0/24, required", true},
		{[]string{"-proxy-protocol-from", "10.0.0.4", "-proxy-protocol-required=false"}, "optional", true},
		{[]string{"-proxy-protocol-from", "turnd.internal"}, "-proxy-protocol-from", false},
		{[]string{"-proxy-protocol-from", "10.1.0.1/24"}, "host bits", false},
		{[]string{"-proxy-protocol-required=false"}, "needs -proxy-protocol-from", false},
	} {
		var out strings.Builder
		err := run(context.Background(), append(slices.Clone(base), tc.args...), func(string) string { return "" }, &out, io.Discard)
		switch {
		case tc.ok && (err != nil || !strings.Contains(out.String(), tc.want)):
			t.Errorf("%v: %v, printed %q, want %q", tc.args, err, out.String(), tc.want)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}
