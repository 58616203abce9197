package tlsmux_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Many HTTPS requests and TURN allocations arrive on the shared port at
// once, right after it opened, as when a site starts under load: every
// one is answered, none reset or dropped.
func TestSharedPortAnswersABurstRightAfterStart(t *testing.T) {
	const https, turns = 96, 24
	p := startSharedPort(t, 0)
	addr := p.mux.Addr().String()
	errs := make(chan error, https+turns)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range https {
		wg.Go(func() {
			<-start
			errs <- postOnce(addr, p.tlsConfig(), i)
		})
	}
	for i := range turns {
		wg.Go(func() {
			<-start
			errs <- allocateOnce(addr, p.tlsConfig(), i)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d connections failed", failed, https+turns)
	}
}

// postOnce sends one POST with a body on a new connection without ALPN,
// as the first request of a client.
func postOnce(addr string, cfg *tls.Config, i int) error {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return fmt.Errorf("https %d: dial: %w", i, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	body := strings.Repeat("x", 512)
	req := fmt.Sprintf("POST /setup HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("https %d: write: %w", i, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fmt.Errorf("https %d: response: %w", i, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || string(got) != "site HTTP/1.1" {
		return fmt.Errorf("https %d: %d %q %v", i, resp.StatusCode, got, err)
	}
	return nil
}

// allocateOnce makes one TURN allocation over TLS without ALPN.
func allocateOnce(addr string, cfg *tls.Config, i int) error {
	c, err := allocateOverTLS(addr, cfg, fmt.Sprintf("patient-%d", i))
	if err != nil {
		return fmt.Errorf("turn %d: %w", i, err)
	}
	return c.Close()
}
