package mailer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOutboxWritesPrivateMessages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	var logs strings.Builder
	o := &Outbox{Dir: dir, From: "OpenConsult <noreply@hospital.example>", Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		Now: func() time.Time { return time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC) }}
	body := "Choose your password: https://consult.example/reset/SECRETTOKEN\n"
	if err := o.Send(context.Background(), "dr.who@hospital.example", "Réinitialiser", body); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("outbox has %d entries: %v", len(entries), err)
	}
	fi, _ := entries[0].Info()
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("message mode %o, want 600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(filepath.Join(dir, entries[0].Name()))
	msg := string(raw)
	for _, want := range []string{"To: dr.who@hospital.example\r\n", "Subject: =?utf-8?q?R=C3=A9initialiser?=", "Message-ID: <", "@hospital.example>", "SECRETTOKEN\r\n"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(logs.String(), "SECRETTOKEN") || strings.Contains(logs.String(), "dr.who") {
		t.Fatalf("log carries the link or the address: %s", logs.String())
	}
	if !strings.Contains(logs.String(), entries[0].Name()) {
		t.Fatalf("log does not name the file: %s", logs.String())
	}
}

func TestHeaderInjectionRefused(t *testing.T) {
	o := &Outbox{Dir: t.TempDir(), From: "noreply@hospital.example", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
	for _, tc := range []struct{ to, subject string }{
		{"a@b.example\r\nBcc: evil@example.org", "hi"},
		{"a@b.example", "hi\nBcc: evil@example.org"},
	} {
		if err := o.Send(context.Background(), tc.to, tc.subject, "body"); err == nil {
			t.Errorf("Send(%q, %q) accepted a line break in a header", tc.to, tc.subject)
		}
	}
}

// smtpSink is a minimal SMTP server on loopback that accepts one message.
func smtpSink(t *testing.T) (addr string, got <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		fmt.Fprint(c, "220 sink ESMTP\r\n")
		var data strings.Builder
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
				fmt.Fprint(c, "250-sink\r\n250 8BITMIME\r\n")
			case cmd == "DATA":
				fmt.Fprint(c, "354 go on\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == ".\r\n" {
						break
					}
					data.WriteString(l)
				}
				ch <- data.String()
				fmt.Fprint(c, "250 queued\r\n")
			case cmd == "QUIT":
				fmt.Fprint(c, "221 bye\r\n")
				return
			default:
				fmt.Fprint(c, "250 ok\r\n")
			}
		}
	}()
	return ln.Addr().String(), ch
}

func TestSMTPDeliversToLoopbackRelay(t *testing.T) {
	addr, got := smtpSink(t)
	s := &SMTP{Addr: addr, From: "OpenConsult <noreply@hospital.example>", Now: time.Now}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Send(ctx, "dr.who@hospital.example", "Activate", "Your link: https://consult.example/activate/x\n"); err != nil {
		t.Fatal(err)
	}
	msg := <-got
	if !strings.Contains(msg, "To: dr.who@hospital.example") || !strings.Contains(msg, "/activate/x") {
		t.Fatalf("relay received:\n%s", msg)
	}
}

func TestSMTPRejectsBadAddress(t *testing.T) {
	s := &SMTP{Addr: "no-port", From: "noreply@hospital.example", Now: time.Now}
	if err := s.Send(context.Background(), "a@b.example", "s", "b"); err == nil || !strings.Contains(err.Error(), "smtp address") {
		t.Fatalf("bad address: %v", err)
	}
}

func TestClearTextOnlyToLoopback(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "10.0.0.5": false, "smtp.hospital.example": false} {
		if got := clearTextAllowed(host); got != want {
			t.Errorf("clearTextAllowed(%q) = %v", host, got)
		}
	}
}
