//go:build linux

package netlab

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// listenIn starts a TCP server inside n that writes its peer's address to
// every connection.
func listenIn(t *testing.T, n *NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := n.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, c.RemoteAddr().String())
			c.Close()
		}
	}()
}

// peerSeen dials addr from inside n and returns the address the server saw.
func peerSeen(n *NS, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := n.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	host, _, _ := net.SplitHostPort(string(b))
	return host, err
}

// TestRouterForwardsFiltersAndTranslates builds a client, a router and a
// server, and checks each piece a firewall matrix relies on: routing
// through the router, an nftables drop rule, source NAT, and that the
// namespaces are gone once the lab's test ends.
func TestRouterForwardsFiltersAndTranslates(t *testing.T) {
	var names []string
	t.Run("lab", func(t *testing.T) {
		lab := New(t)
		router, client, server := lab.Namespace("router"), lab.Namespace("client"), lab.Namespace("server")
		names = []string{router.Name, client.Name, server.Name}
		lab.Link(router, "192.0.2.1/26", server, "192.0.2.10/26")
		lab.Link(router, "198.51.100.1/26", client, "198.51.100.10/26")
		router.Forwarding()
		client.Route("198.51.100.1")
		server.Route("192.0.2.1")
		router.IP("addr", "add", "198.51.100.100/32", "dev", "lo")
		listenIn(t, server, "192.0.2.10:443")
		listenIn(t, server, "192.0.2.10:8443")

		tests := []struct {
			name, rules, addr, seen string
			blocked                 bool
		}{
			{name: "routed", addr: "192.0.2.10:443", seen: "198.51.100.10"},
			{name: "port blocked", rules: `table inet lab {
  chain forward { type filter hook forward priority 0; policy accept;
    iifname "client" tcp dport != 443 drop
  }
}`, addr: "192.0.2.10:8443", blocked: true},
			{name: "port allowed", rules: `table inet lab {
  chain forward { type filter hook forward priority 0; policy accept;
    iifname "client" tcp dport != 443 drop
  }
}`, addr: "192.0.2.10:443", seen: "198.51.100.10"},
			{name: "translated", rules: `table inet lab {
  chain postrouting { type nat hook postrouting priority 100;
    ip saddr 198.51.100.0/26 oifname != "client" snat ip to 198.51.100.100 fully-random
  }
}`, addr: "192.0.2.10:443", seen: "198.51.100.100"},
		}
		for _, tt := range tests {
			router.Nftables(tt.rules)
			seen, err := peerSeen(client, tt.addr)
			switch {
			case tt.blocked && err == nil:
				t.Errorf("%s: connected to %s, want it blocked", tt.name, tt.addr)
			case !tt.blocked && err != nil:
				t.Errorf("%s: %v", tt.name, err)
			case !tt.blocked && seen != tt.seen:
				t.Errorf("%s: the server saw %s, want %s", tt.name, seen, tt.seen)
			}
		}
		// The test's own network is not the lab's.
		if _, err := net.DialTimeout("tcp", "192.0.2.10:443", 500*time.Millisecond); err == nil {
			t.Error("the lab's server is reachable from outside the lab")
		}
	})
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(netnsDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s left behind: %v", name, err)
		}
	}
}

// A process started with Command lives until the test stops it, whatever
// the test does with Do meanwhile. Command asks Linux to kill the process
// when the thread that started it ends (Pdeathsig); Do enters a namespace
// on a thread of its own, which must go back to the runtime afterwards,
// not end: here the process is even started on Do's thread.
func TestDoNeverKillsProcessesStartedEarlier(t *testing.T) {
	lab := New(t)
	host := lab.Namespace("host")
	cmd := host.Command("sh", "-c", "read line; echo alive")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// Connections from inside the namespace, as a test's HTTP client
	// makes them: each one a Do.
	listenIn(t, host, "127.0.0.1:8080")
	for range 20 {
		if _, err := peerSeen(host, "127.0.0.1:8080"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(stdin, "are you there?\n"); err != nil {
		t.Fatalf("the process is gone: %v", err)
	}
	got := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stdout); got <- string(b) }()
	select {
	case s := <-got:
		if s != "alive\n" {
			t.Fatalf("the process answered %q, want alive: it was killed (%v)", s, cmd.Wait())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the process did not answer")
	}
}
