package audit_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/internal/eventually"
)

// witness is an HTTP witness on a loopback port that refuses the first
// fail requests and records the notes it accepts.
type witness struct {
	mu       sync.Mutex
	fail     int
	attempts int
	got      [][]byte
	hold     chan struct{} // when set, requests wait on it
}

func (w *witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	hold := w.hold
	w.attempts++
	refuse := w.attempts <= w.fail || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "text/plain; charset=utf-8"
	w.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	if refuse {
		http.Error(rw, "not now", http.StatusServiceUnavailable)
		return
	}
	w.mu.Lock()
	w.got = append(w.got, body)
	w.mu.Unlock()
}

func (w *witness) received() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.got...)
}

func runForwarder(t *testing.T, f *audit.Forwarder) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cancel
}

func TestWitnessReceivesEachCheckpointAfterRefusals(t *testing.T) {
	w := &witness{fail: 2}
	srv := httptest.NewServer(w)
	defer srv.Close()
	var logs bytes.Buffer
	fw := audit.NewForwarder("witness", audit.WitnessSender(srv.URL, srv.Client()), 5*time.Second, time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	runForwarder(t, fw)
	f := newFixture(t)
	log := audit.New(f.store, f.signer, f.clock.now, audit.WithPublisher(fw), audit.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	f.append(t, audit.Entry{})
	if _, err := log.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "the witness to accept the checkpoint", func() bool { return len(w.received()) == 1 })
	cp, err := audit.OpenCheckpoint(w.received()[0], f.signer.VerifierKey())
	if err != nil || cp.Size != 1 {
		t.Fatalf("witness got %+v, %v", cp, err)
	}
}

func TestSlowWitnessNeverBlocksCheckpointsAndGetsTheNewest(t *testing.T) {
	w := &witness{hold: make(chan struct{})}
	srv := httptest.NewServer(w)
	defer srv.Close()
	fw := audit.NewForwarder("witness", audit.WitnessSender(srv.URL, srv.Client()), 10*time.Second, time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	runForwarder(t, fw)
	f := newFixture(t)
	log := audit.New(f.store, f.signer, f.clock.now, audit.WithPublisher(fw))
	// While the witness holds the first request, appends and checkpoints
	// go on (a blocked Publish would hang this test).
	for range 5 {
		f.append(t, audit.Entry{})
		if _, err := log.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	close(w.hold)
	eventually.True(t, 10*time.Second, "the newest checkpoint at the witness", func() bool {
		got := w.received()
		if len(got) == 0 {
			return false
		}
		cp, err := audit.OpenCheckpoint(got[len(got)-1], f.signer.VerifierKey())
		return err == nil && cp.Size == 5
	})
	if n := len(w.received()); n > 2 {
		t.Fatalf("witness got %d notes; superseded ones should not be sent", n)
	}
}

func TestForwarderDeliversTheLastCheckpointWhenStopped(t *testing.T) {
	w := &witness{fail: 1}
	srv := httptest.NewServer(w)
	defer srv.Close()
	// A retry pause far longer than the test: only the final attempt at
	// stop can deliver.
	fw := audit.NewForwarder("witness", audit.WitnessSender(srv.URL, srv.Client()), 5*time.Second, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	stop := runForwarder(t, fw)
	f := newFixture(t)
	log := audit.New(f.store, f.signer, f.clock.now, audit.WithPublisher(fw))
	f.append(t, audit.Entry{})
	if _, err := log.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "the first attempt", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.attempts == 1 })
	stop()
	eventually.True(t, 10*time.Second, "delivery at stop", func() bool { return len(w.received()) == 1 })
}

func TestSyslogLineCarriesACheckpointVerifyReads(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	send, err := audit.SyslogSender("udp:" + pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.append(t, audit.Entry{})
	cp, err := f.log.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	note, err := f.signer.Sign(cp)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := send(ctx, note); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	line := string(buf[:n])
	if !strings.HasPrefix(line, "<85>") || !strings.Contains(line, "openconsult-audit[") || !strings.Contains(line, "audit checkpoint 1 ") {
		t.Fatalf("syslog line %q", line)
	}
	// An operator saves the lines syslog kept and gives them to verify.
	path := filepath.Join(t.TempDir(), "syslog.txt")
	if err := os.WriteFile(path, []byte("Dec  1 23:00:00 host "+line), 0o600); err != nil {
		t.Fatal(err)
	}
	exts, err := audit.ReadCheckpointFile(path, f.signer.VerifierKey())
	if err != nil || len(exts) != 1 || !bytes.Equal(exts[0].Note, note) {
		t.Fatalf("read back %+v, %v", exts, err)
	}
}

func TestSyslogTargetMustBeKnown(t *testing.T) {
	for _, target := range []string{"", "udp", "udp:", "http:x:1", "logs.example:514"} {
		if _, err := audit.SyslogSender(target); err == nil {
			t.Errorf("target %q accepted", target)
		}
	}
	for _, target := range []string{"local", "tcp:127.0.0.1:514", "unixgram:/dev/log"} {
		if _, err := audit.SyslogSender(target); err != nil {
			t.Errorf("target %q: %v", target, err)
		}
	}
}
