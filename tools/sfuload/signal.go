package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openconsult/openconsult/internal/procstat"
	"github.com/openconsult/openconsult/internal/syncbuf"
)

// signalProc is a running `signal -dev` on free loopback ports, with its
// own data directory, certificate and embedded SFU.
type signalProc struct {
	cmd     *exec.Cmd
	done    chan error // the child's exit
	stdout  *syncbuf.Buffer
	stderr  *syncbuf.Buffer
	dataDir string
	public  *url.URL // as the server names itself: https://localhost:PORT
	addr    string   // where it listens, 127.0.0.1:PORT
	roots   *x509.CertPool
}

var (
	runningPattern = regexp.MustCompile(`OpenConsult is running\. Open (https://\S+)`)
	setupPattern   = regexp.MustCompile(`https://\S+/setup/\S+`)
)

// startSignal starts path with -dev on loopback ports chosen by the
// kernel, waits until it serves, and trusts the development certificate
// it wrote, as an operator would after importing it.
func startSignal(ctx context.Context, path, dir string, args []string) (*signalProc, error) {
	argv := append([]string{"-dev", "-data-dir", dir, "-listen", "127.0.0.1:0", "-http-listen", "off", "-admin-listen", "off",
		"-relay-listen", "127.0.0.1:0", "-relay-tls-listen", "127.0.0.1:0", "-log-level", "warn"}, args...)
	s := &signalProc{dataDir: dir, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(path, argv...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	go func() { s.done <- s.cmd.Wait() }() // ends with the child, which stop ends
	if err := s.waitRunning(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *signalProc) waitRunning(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := runningPattern.FindStringSubmatch(s.stdout.String()); m != nil {
			u, err := url.Parse(m[1])
			if err != nil || u.Port() == "" {
				return fmt.Errorf("signal announced %q", m[1])
			}
			s.public = &url.URL{Scheme: u.Scheme, Host: u.Host}
			s.addr = net.JoinHostPort("127.0.0.1", u.Port())
			break
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("signal exited (%v):\n%s", err, tail(s.stderr.String()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("signal did not start within 30s:\n%s", tail(s.stderr.String()))
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

// stop interrupts the server, so it shuts down gracefully, and kills it
// if it takes too long.
func (s *signalProc) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *signalProc) pid() int { return s.cmd.Process.Pid }

// dialer connects to the server whatever host a URL names, from source
// (a loopback address; nil for any). Guests each come from their own
// loopback address because the site limits link redemptions per client
// address, which one load tool would otherwise exhaust.
func (s *signalProc) dialer(source net.IP) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if source != nil {
		d.LocalAddr = &net.TCPAddr{IP: source}
	}
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, s.addr)
	}
}

// client returns an HTTP client that trusts the server's certificate and,
// with follow false, returns redirects instead of following them.
func (s *signalProc) client(source net.IP, jar http.CookieJar, follow bool) *http.Client {
	c := &http.Client{
		Transport: &http.Transport{DialContext: s.dialer(source), TLSClientConfig: &tls.Config{RootCAs: s.roots}, MaxIdleConnsPerHost: 4},
		Jar:       jar,
		Timeout:   30 * time.Second,
	}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

// guestSource is the loopback address guest i connects from.
func guestSource(i int) net.IP {
	return net.IPv4(127, 77, byte(i/200), byte(10+i%200))
}

func tail(s string) string {
	const n = 2000
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// hasFlag reports whether the signal binary knows a flag, from its -h.
func hasFlag(path, name string) bool {
	out, _ := exec.Command(path, "-h").CombinedOutput()
	return strings.Contains(string(out), "-"+name+" ") || strings.Contains(string(out), "-"+name+"\n")
}

// signalArgs are the flags the scenario needs: the move to the node at
// three members (the default) for consults, at two for grand rounds (the
// smallest the server allows, so the presenter's first viewer moves the
// room), and room on the node for everyone.
func signalArgs(o options, participants int) []string {
	args := []string{"-sfu-max-participants", strconv.Itoa(participants + 10)}
	if o.scenario == "grandrounds" {
		args = append(args, "-sfu-min-participants", "2")
	}
	return append(args, o.signalArgs...)
}

// runSignal measures the SFU embedded in a `signal -dev` child, reached
// through the real signaling path: a clinician account with TOTP,
// consults and their patient links, guests who redeem them and wait in
// the lobby until the clinician's socket admits them, and the move to
// the node when enough members are admitted.
func runSignal(ctx context.Context, o options) (Result, error) {
	if !hasFlag(o.signal, "sfu-min-participants") {
		return Result{}, fmt.Errorf("%s has no media node signaling (no -sfu-min-participants flag); build the current signal with make build, or use -direct", o.signal)
	}
	rooms := plan(o)
	participants := 0
	for _, ms := range rooms {
		participants += len(ms)
	}
	dir, err := os.MkdirTemp("", "sfuload-signal-")
	if err != nil {
		return Result{}, fmt.Errorf("data directory: %w", err)
	}
	defer os.RemoveAll(dir)
	clinician, err := setUpAccounts(ctx, o.signal, dir)
	if err != nil {
		return Result{}, err
	}
	// A fresh process for the measurement: the accounts' password hashing
	// (argon2id) leaves tens of MiB of freed heap that an idle server
	// keeps resident, which would swamp the memory the sessions take.
	// The clinician's session lives in the database and survives.
	sig, err := startSignal(ctx, o.signal, dir, signalArgs(o, participants))
	if err != nil {
		return Result{}, err
	}
	defer sig.stop()
	clinician = sig.reuse(clinician)
	defer clinician.CloseIdleConnections()
	states := make([]*roomState, len(rooms))
	for i, ms := range rooms {
		c, err := sig.createConsult(ctx, clinician, fmt.Sprintf("load %d", i+1))
		if err != nil {
			return Result{}, err
		}
		states[i] = newRoomState(c, len(ms))
	}
	var staff []*http.Cookie
	if jar := clinician.Jar; jar != nil {
		staff = jar.Cookies(sig.public)
	}

	var mu sync.Mutex
	var sockets []*wsMember
	defer func() {
		for _, w := range sockets {
			w.close()
		}
	}()
	guests := 0
	env := runEnv{base: time.Now(), win: &window{}, cpuProcess: "the signal -dev process (signaling and the in-process SFU)",
		usage: func() (procstat.Usage, error) { return procstat.Read(sig.pid()) }}
	r, err := measure(ctx, o, env, rooms, func(ctx context.Context, m *member) error {
		host := m == rooms[m.room][0]
		w := &wsMember{m: m, host: host, room: states[m.room], view: o.view, started: make(chan error, 1)}
		mu.Lock()
		sockets = append(sockets, w)
		source := guests
		if !host {
			guests++
		}
		mu.Unlock()
		cookies := staff
		if !host {
			ck, err := sig.joinAsGuest(ctx, w.room.consult.link, m.name, source)
			if err != nil {
				return err
			}
			cookies = []*http.Cookie{ck}
			select { // the host admits from its socket
			case <-w.room.hostUp:
			case <-time.After(o.joinTimeout):
				return fmt.Errorf("the host's socket not open within %s", o.joinTimeout)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := w.connect(ctx, sig, cookies, source); err != nil {
			return err
		}
		select {
		case err := <-w.started:
			return err
		case <-time.After(o.joinTimeout):
			return fmt.Errorf("not moved to the media node within %s", o.joinTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	r.Mode = "signal"
	return r, err
}

// setUpAccounts runs signal once to create the accounts and returns the
// clinician's signed-in client.
func setUpAccounts(ctx context.Context, path, dir string) (*http.Client, error) {
	sig, err := startSignal(ctx, path, dir, nil)
	if err != nil {
		return nil, err
	}
	defer sig.stop()
	c, err := sig.clinicianSession(ctx)
	if err != nil {
		return nil, err
	}
	c.CloseIdleConnections()
	return c, nil
}

// reuse returns a client of this server that keeps c's cookies; cookies
// name a host, not a port, so they hold across a restart.
func (s *signalProc) reuse(c *http.Client) *http.Client {
	return s.client(nil, c.Jar, true)
}
