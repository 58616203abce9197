package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/config"
	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/syncbuf"
)

// devServer is a running `signal -dev` on random loopback ports.
type devServer struct {
	public, redirect, admin string
	stdout, stderr          *syncbuf.Buffer
	client                  *http.Client
	stop                    func() error
}

// ephemeralListeners replaces the fixed ports -dev defaults to (8443, 8080,
// 9090, 3478, 5349), so that tests run beside `make run`.
func ephemeralListeners() []string {
	return []string{"-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0",
		"-relay-listen", "127.0.0.1:0", "-relay-tls-listen", "127.0.0.1:0"}
}

// startDev starts signal -dev on ephemeral ports with the extra flags.
func startDev(t *testing.T, dataDir string, extra ...string) *devServer {
	t.Helper()
	return startDevAdjusted(t, dataDir, nil, extra...)
}

// startDevAdjusted is startDev with adjust applied to the loaded settings.
func startDevAdjusted(t *testing.T, dataDir string, adjust func(*settings), extra ...string) *devServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &devServer{stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}}
	args := append([]string{"-dev", "-data-dir", dataDir}, ephemeralListeners()...)
	args = append(args, extra...)
	done := make(chan error, 1)
	go func() { done <- runWith(ctx, args, func(string) string { return "" }, d.stdout, d.stderr, adjust) }()
	d.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("server did not stop")
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("signal's log:\n%s", d.stderr.String())
		}
	})
	eventually.True(t, 30*time.Second, "the server to start", func() bool {
		select {
		case err := <-done:
			t.Fatalf("server exited: %v", err)
		default:
		}
		return strings.Contains(d.stdout.String(), "OpenConsult is running")
	})
	d.public = regexp.MustCompile(`Open (https://\S+)`).FindStringSubmatch(d.stdout.String())[1]
	// The listeners announce themselves as they start serving.
	eventually.True(t, 30*time.Second, "the listeners to announce themselves", func() bool {
		for _, line := range logLines(t, d.stderr.String()) {
			if line["msg"] == "listening" {
				switch line["server"] {
				case "http-redirect":
					d.redirect = "http://" + line["addr"].(string)
				case "admin":
					d.admin = "http://" + line["addr"].(string)
				}
			}
		}
		return d.redirect != "" && d.admin != ""
	})
	// Trust exactly the development certificate the server wrote, as an
	// operator would after importing it.
	pem, err := os.ReadFile(filepath.Join(dataDir, "tls", "dev-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	d.client = &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: 30 * time.Second,
	}
	return d
}

func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func (d *devServer) do(t *testing.T, method, url string, form url.Values, origin string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestDevServerServesHealthOverTLSWithHSTS(t *testing.T) {
	d := startDev(t, t.TempDir())
	defer d.stop()

	resp, body := d.do(t, "GET", d.public+"/healthz", nil, "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz = %d %q", resp.StatusCode, body)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("/healthz not served over TLS 1.2+: %+v", resp.TLS)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=63072000") {
		t.Fatalf("HSTS header = %q", hsts)
	}
	resp, body = d.do(t, "GET", d.public+"/readyz", nil, "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"database":"ok"`) {
		t.Fatalf("/readyz = %d %q", resp.StatusCode, body)
	}
	if err := d.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func TestDevServerRefusesOldTLS(t *testing.T) {
	d := startDev(t, t.TempDir())
	defer d.stop()
	host := strings.TrimPrefix(d.public, "https://")
	tests := []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"TLS 1.1", &tls.Config{MaxVersion: tls.VersionTLS11}, false},
		{"TLS 1.0", &tls.Config{MaxVersion: tls.VersionTLS10}, false},
		{"TLS 1.2 CBC suite only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, false},
		{"TLS 1.2 AEAD", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}, true},
		{"TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg.Clone()
			cfg.InsecureSkipVerify = true // the handshake parameters are under test, not the chain
			conn, err := tls.Dial("tcp", host, cfg)
			if err == nil {
				conn.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("handshake error = %v, want success %v", err, tt.ok)
			}
		})
	}
}

func TestPlainHTTPOnlyRedirects(t *testing.T) {
	d := startDev(t, t.TempDir())
	defer d.stop()
	for _, method := range []string{"GET", "POST"} {
		resp, _ := d.do(t, method, d.redirect+"/healthz?probe=1", url.Values{}, "")
		if resp.StatusCode != http.StatusMovedPermanently {
			t.Fatalf("%s over HTTP = %d, want 301", method, resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); loc != d.public+"/healthz?probe=1" {
			t.Fatalf("Location = %q, want %q", loc, d.public+"/healthz?probe=1")
		}
	}
	// A forged Host header cannot turn the redirect into an open redirect.
	req, _ := http.NewRequest("GET", d.redirect+"/", nil)
	req.Host = "evil.example"
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, d.public+"/") {
		t.Fatalf("Location with forged Host = %q", loc)
	}
}

func TestSetupLinkWorksOnceAndNeverAgain(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	m := regexp.MustCompile(`(https://\S+/setup/(\S+))`).FindStringSubmatch(d.stdout.String())
	if m == nil {
		t.Fatalf("no setup link printed:\n%s", d.stdout.String())
	}
	link, token := m[1], m[2]
	if strings.Contains(d.stderr.String(), token) {
		t.Fatal("the setup token reached the log")
	}

	resp, body := d.do(t, "GET", link, nil, "")
	if resp.StatusCode != 200 || !strings.Contains(body, `name="password"`) {
		t.Fatalf("GET setup = %d", resp.StatusCode)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("setup page Cache-Control = %q", cc)
	}
	good := url.Values{"username": {"Admin"}, "password": {"a long passphrase here"}, "confirm": {"a long passphrase here"}}

	// A form posted from another site is refused before it is read.
	if resp, _ := d.do(t, "POST", link, good, "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin POST = %d, want 403", resp.StatusCode)
	}
	mismatch := url.Values{"username": {"admin"}, "password": {"a long passphrase here"}, "confirm": {"another passphrase!!"}}
	if resp, body := d.do(t, "POST", link, mismatch, d.public); resp.StatusCode != 422 || !strings.Contains(body, "differ") {
		t.Fatalf("mismatched passwords = %d", resp.StatusCode)
	}
	weak := url.Values{"username": {"admin"}, "password": {"short"}, "confirm": {"short"}}
	if resp, body := d.do(t, "POST", link, weak, d.public); resp.StatusCode != 422 || !strings.Contains(body, "at least 12") {
		t.Fatalf("weak password = %d", resp.StatusCode)
	}
	resp, body = d.do(t, "POST", link, good, d.public)
	if resp.StatusCode != 200 || !strings.Contains(body, "Administrator created") || !strings.Contains(body, "admin") {
		t.Fatalf("setup = %d %s", resp.StatusCode, body)
	}
	for _, method := range []string{"GET", "POST"} {
		if resp, _ := d.do(t, method, link, good, d.public); resp.StatusCode != http.StatusGone {
			t.Fatalf("%s after use = %d, want 410", method, resp.StatusCode)
		}
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	// A restart with an account prints no new link and reuses the certificate.
	cert1, _ := os.ReadFile(filepath.Join(dir, "tls", "dev-cert.pem"))
	d2 := startDev(t, dir)
	defer d2.stop()
	if strings.Contains(d2.stdout.String(), "/setup/") {
		t.Fatalf("restart printed a setup link:\n%s", d2.stdout.String())
	}
	cert2, _ := os.ReadFile(filepath.Join(dir, "tls", "dev-cert.pem"))
	if !bytes.Equal(cert1, cert2) {
		t.Fatal("restart replaced a valid development certificate")
	}
	if resp, _ := d2.do(t, "GET", d2.public+"/setup/"+token, nil, ""); resp.StatusCode != http.StatusGone {
		t.Fatalf("old link after restart = %d, want 410", resp.StatusCode)
	}
}

func TestMetricsByRouteWithoutSecrets(t *testing.T) {
	d := startDev(t, t.TempDir())
	defer d.stop()
	token := regexp.MustCompile(`/setup/(\S+)`).FindStringSubmatch(d.stdout.String())[1]
	d.do(t, "GET", d.public+"/healthz", nil, "")
	d.do(t, "GET", d.public+"/setup/"+token, nil, "")
	d.do(t, "GET", d.public+"/no/such/page", nil, "")
	resp, body := d.do(t, "GET", d.admin+"/metrics", nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics = %d", resp.StatusCode)
	}
	for _, want := range []string{
		`http_requests_total{code="200",method="GET",route="GET /healthz",server="site"} 1`,
		`route="GET /setup/{token}"`,
		`http_request_duration_seconds_bucket`,
		`go_goroutines`,
		"signal_large_messages_refused_total 0",
		"signal_large_message_bytes 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, token) || strings.Contains(body, "/no/such/page") {
		t.Fatal("metrics carry a path or a token")
	}
	if resp, _ := d.do(t, "GET", d.public+"/metrics", nil, ""); resp.StatusCode != 404 {
		t.Fatalf("/metrics on the public site = %d, want 404", resp.StatusCode)
	}
}

func TestBadConfigurationNamesTheSetting(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "signal.toml")
	if err := os.WriteFile(file, []byte("log-level = \"chatty\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	svgLogo, bigLogo := filepath.Join(dir, "logo.svg"), filepath.Join(dir, "logo.png")
	if err := os.WriteFile(svgLogo, []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bigLogo, append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 300<<10)...), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"no certificate in production", []string{"-public-url", "https://c.example.org"}, nil, []string{"-tls-cert", "-acme-domain", "-dev"}},
		{"no public url", []string{"-tls-cert", "c.pem", "-tls-key", "k.pem"}, nil, []string{"-public-url", "required"}},
		{"cert without key", []string{"-dev", "-tls-cert", "c.pem"}, nil, []string{"-tls-key", "go together"}},
		{"http public url", []string{"-dev", "-public-url", "http://c.example.org"}, nil, []string{"-public-url", "https"}},
		{"bad log level from env", []string{"-dev"}, map[string]string{"SIGNAL_LOG_LEVEL": "chatty"}, []string{"-log-level", "SIGNAL_LOG_LEVEL", "debug, info, warn, error"}},
		{"bad log level from file", []string{"-dev", "-config", file}, nil, []string{"-log-level", "config file", "debug, info, warn, error"}},
		{"setup link too long", []string{"-dev", "-setup-link-ttl", "72h"}, nil, []string{"-setup-link-ttl", "1m to 24h"}},
		{"listen off", []string{"-dev", "-listen", "off"}, nil, []string{"-listen", "cannot be off"}},
		{"bad duration", []string{"-dev", "-shutdown-timeout", "soon"}, nil, []string{"-shutdown-timeout"}},
		{"unknown database", []string{"-dev", "-data-dir", dir, "-database", "mysql://x"}, nil, []string{"unsupported database"}},
		{"sfu node without link certificate", []string{"-dev", "-sfu-node", "wss://sfu-1.example.internal:7443/"}, nil, []string{"-sfu-link-cert", "authenticated"}},
		{"sfu node not wss", []string{"-dev", "-sfu-node", "http://sfu-1.example.internal:7443/", "-sfu-link-cert", "c", "-sfu-link-key", "k", "-sfu-link-ca", "ca"}, nil, []string{"-sfu-node", "wss://"}},
		{"own transport without a shared port", []string{"-dev", "-sfu-own-transport"}, nil, []string{"-sfu-own-transport", "-sfu-udp-listen"}},
		{"embedded and remote sfu", []string{"-dev", "-sfu-embedded", "-sfu-node", "wss://sfu-1.example.internal:7443/", "-sfu-link-cert", "c", "-sfu-link-key", "k", "-sfu-link-ca", "ca"}, nil, []string{"-sfu-embedded", "not both"}},
		// The link files are read after the listeners are bound.
		{"sfu link files missing", append([]string{"-dev", "-data-dir", dir, "-sfu-node", "wss://sfu-1.example.internal:7443/", "-sfu-link-cert", filepath.Join(dir, "c.pem"), "-sfu-link-key", filepath.Join(dir, "k.pem"), "-sfu-link-ca", filepath.Join(dir, "ca.pem")}, ephemeralListeners()...), nil, []string{"-sfu-link-cert"}},
		{"azure without an account", append([]string{"-dev", "-object-store", "azure"}, ephemeralListeners()...), nil, []string{"-azure-account-url", "-azure-connection-string"}},
		{"azure with two credentials", append([]string{"-dev", "-object-store", "azure", "-azure-account-url", "https://a.blob.core.windows.net", "-azure-account-key", "k", "-azure-sas", "sv=x"}, ephemeralListeners()...), nil, []string{"-azure-sas", "not both"}},
		{"unknown object store", append([]string{"-dev", "-object-store", "s3"}, ephemeralListeners()...), nil, []string{"-object-store", "filesystem, azure"}},
		{"document quota of none", append([]string{"-dev", "-document-max-files", "0"}, ephemeralListeners()...), nil, []string{"-document-max-files", "1 to 10000"}},
		{"sfu threshold of one", []string{"-dev", "-sfu-min-participants", "1"}, nil, []string{"-sfu-min-participants", "2 to 50"}},
		{"no budget for large messages", []string{"-dev", "-large-message-mib", "0"}, nil, []string{"-large-message-mib", "1 to 4096"}},
		{"svg logo", []string{"-dev", "-institution-logo", svgLogo}, nil, []string{"-institution-logo", "SVG is not accepted"}},
		{"logo too large", []string{"-dev", "-institution-logo", bigLogo}, nil, []string{"-institution-logo", "larger than 256 KiB"}},
		{"logo missing", []string{"-dev", "-institution-logo", filepath.Join(dir, "none.png")}, nil, []string{"-institution-logo", "open logo"}},
		{"previous key file without its passphrase", []string{"-dev", "-previous-key-file", filepath.Join(dir, "old.key")}, nil, []string{"-previous-key-passphrase", "SIGNAL_PREVIOUS_KEY_PASSPHRASE"}},
		{"two previous keys", []string{"-dev", "-previous-key-file", filepath.Join(dir, "old.key"), "-previous-key-passphrase-file", "p"}, map[string]string{"SIGNAL_PREVIOUS_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, []string{"-previous-key-file", "not both"}},
		{"negative return to peers", []string{"-dev", "-sfu-return-after", "-1s"}, nil, []string{"-sfu-return-after", "0 to 1h"}},
		{"missing cert file", []string{"-tls-cert", filepath.Join(dir, "none.pem"), "-tls-key", filepath.Join(dir, "none.key"), "-public-url", "https://c.example.org", "-data-dir", dir, "-master-key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, nil, []string{"certificate file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, tt.args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("bad configuration accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestHelpListsEveryFlagWithDefault(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, io.Discard, &out)
	if !errors.Is(err, config.ErrHelp) {
		t.Fatalf("-h = %v", err)
	}
	s := newSettings(io.Discard)
	s.set.Flags().VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "-"+f.Name+" ") && !strings.Contains(out.String(), "-"+f.Name+"\n") {
			t.Errorf("help lacks -%s", f.Name)
		}
		// The flag package prints no zero default; such a flag's usage says
		// what 0 means instead.
		if (f.DefValue == "0" || f.DefValue == "0s") && !strings.Contains(f.Usage, "(0") {
			t.Errorf("usage of -%s does not say what its default 0 means", f.Name)
			return
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" && !strings.Contains(out.String(), "(default "+f.DefValue+")") &&
			!strings.Contains(out.String(), "(default \""+f.DefValue+"\")") {
			t.Errorf("help lacks the default of -%s (%s)", f.Name, f.DefValue)
		}
	})
}

func TestExampleConfigLoads(t *testing.T) {
	s := newSettings(io.Discard)
	env := map[string]string{"SIGNAL_TURN_SECRET": "from the secret store"}
	if err := s.load([]string{"-config", "../../deploy/signal.toml"}, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("deploy/signal.toml: %v", err)
	}
	if s.publicURL.String() != "https://consult.example-hospital.org" || s.listen.Value != ":443" {
		t.Fatalf("example settings not applied: %s %s", s.publicURL.String(), s.listen.Value)
	}
}
