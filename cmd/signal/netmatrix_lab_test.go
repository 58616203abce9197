//go:build linux

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/netlab"
	"github.com/openconsult/openconsult/internal/syncbuf"
	"github.com/openconsult/openconsult/internal/testpki"
)

// The firewall matrix's networks, all in documentation ranges: a router
// joins the server's network and one network per browser. Under NAT, a
// browser's network leaves the router from the router's public address of
// that network.
const (
	serverAddr    = "192.0.2.10"
	clinicianAddr = "198.51.100.10"
	clinicianNAT  = "198.51.100.100"
	patientAddr   = "203.0.113.10"
	patientNAT    = "203.0.113.100"
	thirdAddr     = "198.51.100.74"
)

// matrixLab is the namespaces of the firewall matrix. The router's
// interfaces are named after the networks they lead to: "server",
// "clinician", "patient" and "third".
type matrixLab struct {
	router, server, clinician, patient, third *netlab.NS
}

func newMatrixLab(t *testing.T) *matrixLab {
	t.Helper()
	lab := netlab.New(t)
	m := &matrixLab{router: lab.Namespace("router"), server: lab.Namespace("server"),
		clinician: lab.Namespace("clinician"), patient: lab.Namespace("patient"), third: lab.Namespace("third")}
	lab.Link(m.router, "192.0.2.1/26", m.server, serverAddr+"/26")
	lab.Link(m.router, "198.51.100.1/26", m.clinician, clinicianAddr+"/26")
	lab.Link(m.router, "203.0.113.1/26", m.patient, patientAddr+"/26")
	lab.Link(m.router, "198.51.100.65/26", m.third, thirdAddr+"/26")
	m.server.Route("192.0.2.1")
	m.clinician.Route("198.51.100.1")
	m.patient.Route("203.0.113.1")
	m.third.Route("198.51.100.65")
	m.router.Forwarding()
	for _, a := range []string{clinicianNAT, patientNAT} {
		m.router.IP("addr", "add", a+"/32", "dev", "lo")
	}
	return m
}

// routerRules is the router's whole nftables ruleset: forward filter
// rules and source NAT rules, each one per line.
func routerRules(forward, nat string) string {
	return "table inet lab {\n  chain forward { type filter hook forward priority 0; policy accept;\n" + forward +
		"\n  }\n  chain postrouting { type nat hook postrouting priority 100;\n" + nat + "\n  }\n}\n"
}

// browserIn makes browsertest.New start the browser inside ns.
func browserIn(ns *netlab.NS) chromedp.ExecAllocatorOption {
	return chromedp.ModifyCmdFunc(ns.WrapCommand)
}

// startSignalIn runs this test binary as `signal -dev` inside ns, at
// https://192.0.2.10 (port 443) with a certificate for that address, the
// embedded relay's TURN over TLS on the same port, and the embedded media
// node's UDP and ICE-TCP on port 3479, and its metrics on the namespace's
// loopback. The test's HTTP client reaches it from inside ns. relay, when
// given, replaces the relay's flags after -relay-listen.
func startSignalIn(t *testing.T, ns *netlab.NS, dataDir string, relay ...string) *devServer {
	t.Helper()
	ca := testpki.NewCA(t, "matrix")
	cert, key := ca.IssueServer(t, serverAddr, net.ParseIP(serverAddr))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(exe, "-dev", "-data-dir", dataDir,
		"-listen", serverAddr+":443", "-http-listen", "off", "-admin-listen", "127.0.0.1:9090",
		"-public-url", "https://"+serverAddr, "-tls-cert", cert, "-tls-key", key,
		"-sfu-udp-listen", serverAddr+":3479", "-sfu-tcp-listen", serverAddr+":3479", "-relay-listen", serverAddr+":3478")
	if len(relay) == 0 {
		relay = []string{"-relay-on-https-port"}
	}
	cmd.Args = append(cmd.Args, relay...)
	cmd.Env = append(os.Environ(), envRunSignal+"=1")
	d := &devServer{public: "https://" + serverAddr, admin: "http://127.0.0.1:9090", stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}}
	cmd.Stdout, cmd.Stderr = d.stdout, d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start signal in %s: %v", ns.Name, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	d.stop = sync.OnceValue(func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return waitErr
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("server did not stop")
		}
	})
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("stop signal: %v", err)
		}
		if t.Failed() {
			t.Logf("signal's log:\n%s", d.stderr.String())
		}
	})
	eventually.True(t, 60*time.Second, "the server to start", func() bool {
		select {
		case <-exited:
			t.Fatalf("server exited: %v\n%s%s", waitErr, d.stdout.String(), d.stderr.String())
		default:
		}
		return strings.Contains(d.stdout.String(), "OpenConsult is running")
	})
	pem, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	d.client = &http.Client{
		Transport: &http.Transport{DialContext: ns.DialContext, TLSClientConfig: &tls.Config{RootCAs: roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: 30 * time.Second,
	}
	// The first request of a test is a POST, which the client never sends
	// again: wait until the site answers on its shared TLS port.
	eventually.True(t, 30*time.Second, "the site to answer", func() bool {
		resp, err := d.client.Get(d.public + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return d
}

// relayRefusals returns the relay's refusal counters that are not zero,
// from the server's metrics, one "name{labels} value" a line, or "none".
func relayRefusals(t *testing.T, d *devServer) string {
	t.Helper()
	resp, err := d.client.Get(d.admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		name, value, _ := strings.Cut(line, " ")
		if strings.HasPrefix(name, "turn_") && (strings.Contains(name, "refusals_total") || strings.Contains(name, "auth_failures_total")) && value != "0" {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "\n")
}
