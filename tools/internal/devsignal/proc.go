// Package devsignal starts a `signal -dev` child process for the load
// tools and drives it as people do in a browser: the first administrator,
// a clinician with a second factor, consults and their patient links, and
// guests who redeem them.
package devsignal

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/openconsult/openconsult/internal/syncbuf"
)

// Proc is a running `signal -dev` on free loopback ports, with its own
// data directory, certificate and embedded SFU.
type Proc struct {
	cmd     *exec.Cmd
	done    chan error // the child's exit
	stdout  *syncbuf.Buffer
	stderr  *syncbuf.Buffer
	dataDir string
	Public  *url.URL // as the server names itself: https://localhost:PORT
	Addr    string   // where it listens, 127.0.0.1:PORT
	// Admin is the address of its /metrics listener; empty after StartLean.
	Admin string
	roots *x509.CertPool
}

var (
	runningPattern = regexp.MustCompile(`OpenConsult is running\. Open (https://\S+)`)
	setupPattern   = regexp.MustCompile(`https://\S+/setup/\S+`)
)

// Start starts path with -dev on loopback ports chosen by the kernel, its
// metrics listener included, waits until both serve, and trusts the
// development certificate it wrote, as an operator would after importing
// it. args come after the defaults and may override them.
func Start(ctx context.Context, path, dir string, args []string) (*Proc, error) {
	return start(ctx, path, dir, true, append([]string{"-admin-listen", "127.0.0.1:0", "-log-level", "info", "-log-format", "json"}, args...))
}

// StartLean starts path as Start does but without the metrics listener
// (Admin stays empty) and logging only warnings, so that what a tool
// measures of the process is the site and its media alone. args come
// after the defaults and may override them.
func StartLean(ctx context.Context, path, dir string, args []string) (*Proc, error) {
	return start(ctx, path, dir, false, append([]string{"-admin-listen", "off", "-log-level", "warn"}, args...))
}

// start runs the child with args after the common defaults and waits for
// its banner and, with admin, its metrics listener.
func start(ctx context.Context, path, dir string, admin bool, args []string) (*Proc, error) {
	argv := append([]string{"-dev", "-data-dir", dir, "-listen", "127.0.0.1:0", "-http-listen", "off",
		"-relay-listen", "127.0.0.1:0", "-relay-tls-listen", "127.0.0.1:0"}, args...)
	s := &Proc{dataDir: dir, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(path, argv...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	go func() { s.done <- s.cmd.Wait() }() // ends with the child, which Stop ends
	if err := s.waitRunning(ctx, admin); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitRunning waits for the banner and, with admin, for the metrics
// listener, then trusts the development certificate.
func (s *Proc) waitRunning(ctx context.Context, admin bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The banner comes before the servers log where they listen.
		if m := runningPattern.FindStringSubmatch(s.stdout.String()); m != nil && (!admin || s.adminAddr() != "") {
			u, err := url.Parse(m[1])
			if err != nil || u.Port() == "" {
				return fmt.Errorf("signal announced %q", m[1])
			}
			s.Public = &url.URL{Scheme: u.Scheme, Host: u.Host}
			s.Addr = net.JoinHostPort("127.0.0.1", u.Port())
			if admin {
				s.Admin = s.adminAddr()
			}
			break
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("signal exited (%v):\n%s", err, Tail(s.stderr.String()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("signal did not start within 30s:\n%s", Tail(s.stderr.String()))
		}
	}
	pem, err := os.ReadFile(filepath.Join(s.dataDir, "tls", "dev-cert.pem"))
	if err != nil {
		return fmt.Errorf("development certificate: %w", err)
	}
	s.roots = x509.NewCertPool()
	if !s.roots.AppendCertsFromPEM(pem) {
		return errors.New("development certificate: no PEM certificate")
	}
	return nil
}

// adminAddr finds the metrics listener's address in the JSON log.
func (s *Proc) adminAddr() string {
	for line := range strings.Lines(s.stderr.String()) {
		var l struct{ Msg, Server, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" && l.Server == "admin" {
			return l.Addr
		}
	}
	return ""
}

// Stop interrupts the server, so it shuts down gracefully, and kills it
// if it takes too long.
func (s *Proc) Stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Log is what the child wrote to standard error so far.
func (s *Proc) Log() string { return s.stderr.String() }

// PID is the child's process id.
func (s *Proc) PID() int { return s.cmd.Process.Pid }

// Dialer connects to the server whatever host a URL names, from source
// (a loopback address; nil for any). Guests each come from their own
// loopback address because the site limits link redemptions per client
// address, which one load tool would otherwise exhaust.
func (s *Proc) Dialer(source net.IP) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if source != nil {
		d.LocalAddr = &net.TCPAddr{IP: source}
	}
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, s.Addr)
	}
}

// TLSConfig trusts the server's development certificate.
func (s *Proc) TLSConfig() *tls.Config { return &tls.Config{RootCAs: s.roots} }

// Client returns an HTTP client that trusts the server's certificate and,
// with follow false, returns redirects instead of following them.
func (s *Proc) Client(source net.IP, jar http.CookieJar, follow bool) *http.Client {
	c := &http.Client{
		Transport: &http.Transport{DialContext: s.Dialer(source), TLSClientConfig: s.TLSConfig(), MaxIdleConnsPerHost: 4},
		Jar:       jar,
		Timeout:   30 * time.Second,
	}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

// Reuse returns a client of this server that keeps c's cookies; cookies
// name a host, not a port, so they hold across a restart.
func (s *Proc) Reuse(c *http.Client) *http.Client {
	return s.Client(nil, c.Jar, true)
}

// GuestSource is the loopback address guest i connects from.
func GuestSource(i int) net.IP {
	return net.IPv4(127, 77, byte(i/200), byte(10+i%200))
}

// Tail is the end of a child's output, for an error message.
func Tail(s string) string {
	const n = 2000
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// SetUpAccounts runs signal once to create the accounts and returns the
// clinician's signed-in client. The measurement runs in a fresh process:
// the accounts' password hashing (argon2id) leaves tens of MiB of freed
// heap that an idle server keeps resident. The clinician's session lives
// in the database and survives; Reuse carries it over.
func SetUpAccounts(ctx context.Context, path, dir string) (*http.Client, error) {
	sig, err := Start(ctx, path, dir, nil)
	if err != nil {
		return nil, err
	}
	defer sig.Stop()
	c, err := sig.ClinicianSession(ctx)
	if err != nil {
		return nil, err
	}
	c.CloseIdleConnections()
	return c, nil
}
