//go:build linux

// Package netlab builds small networks out of Linux network namespaces for
// tests: hosts and routers joined by veth pairs, with nftables rules for
// firewalls and NAT. A test runs real programs inside a namespace with
// Command, and reaches into one from its own process with DialContext.
// Everything a lab creates is deleted when the test ends, also when it fails.
//
// A lab needs root, iproute2's ip and nftables' nft. Without them the test
// is skipped, and fails under CI, which runs as root with both installed.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// namePrefix starts the name of every namespace a lab creates; the rest
// is the creating process's id and a random tag, so that parallel runs do
// not collide and a later run can remove what a killed one left behind.
const namePrefix = "ocnl"

// netnsDir is where `ip netns` keeps named namespaces.
const netnsDir = "/run/netns"

// Lab is a set of network namespaces that belong to one test.
type Lab struct {
	t   testing.TB
	tag string
	ip  string
	nft string
}

// New returns an empty lab, or skips the test (fails it under CI) when the
// process is not root or ip or nft is missing.
func New(t testing.TB) *Lab {
	t.Helper()
	missing := func(why string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("network namespaces unavailable: %s", why)
		}
		t.Skipf("network namespaces unavailable (%s); run as root with iproute2 and nftables installed", why)
	}
	if os.Geteuid() != 0 {
		missing("not root")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		missing("no ip command")
	}
	nft, err := exec.LookPath("nft")
	if err != nil {
		missing("no nft command")
	}
	removeAbandoned(ip)
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return &Lab{t: t, tag: fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), hex.EncodeToString(b)), ip: ip, nft: nft}
}

// removeAbandoned deletes the namespaces of labs whose process is gone, such
// as a test run killed by its timeout before its clean-up ran.
func removeAbandoned(ip string) {
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(rest[:strings.IndexAny(rest+"-", "-")])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		_ = exec.Command(ip, "netns", "delete", e.Name()).Run()
	}
}

// NS is one network namespace of a lab: a host or a router.
type NS struct {
	lab *Lab
	// Name is the namespace's name for `ip netns exec`.
	Name string
	// Role is the name the lab was given for it, also the name of the
	// interface that leads to it in its neighbours.
	Role string
}

// Namespace creates a namespace with its loopback up and IPv6 off (the
// labs use IPv4 documentation ranges only), deleted when the test ends.
func (l *Lab) Namespace(role string) *NS {
	l.t.Helper()
	n := &NS{lab: l, Name: l.tag + "-" + role, Role: role}
	l.run(l.ip, "netns", "add", n.Name)
	l.t.Cleanup(func() {
		if out, err := exec.Command(l.ip, "netns", "delete", n.Name).CombinedOutput(); err != nil {
			l.t.Errorf("delete namespace %s: %v: %s", n.Name, err, out)
		}
	})
	for _, key := range []string{"ipv6/conf/all/disable_ipv6", "ipv6/conf/default/disable_ipv6"} {
		n.Sysctl(key, "1")
	}
	n.IP("link", "set", "lo", "up")
	return n
}

// Link joins a and b with a veth pair and gives each end an address with
// its prefix length, such as 198.51.100.1/26. The interface in a is named
// after b's role and the one in b after a's, at most 15 characters.
func (l *Lab) Link(a *NS, aAddr string, b *NS, bAddr string) {
	l.t.Helper()
	ifA, ifB := ifName(b.Role), ifName(a.Role)
	l.run(l.ip, "link", "add", ifA, "netns", a.Name, "type", "veth", "peer", "name", ifB, "netns", b.Name)
	for _, end := range []struct {
		ns        *NS
		dev, addr string
	}{{a, ifA, aAddr}, {b, ifB, bAddr}} {
		end.ns.IP("addr", "add", end.addr, "dev", end.dev)
		end.ns.IP("link", "set", end.dev, "up")
	}
}

func ifName(role string) string {
	if len(role) > 15 {
		return role[:15]
	}
	return role
}

// IP runs `ip -n NAME args...`.
func (n *NS) IP(args ...string) {
	n.lab.t.Helper()
	n.lab.run(n.lab.ip, append([]string{"-n", n.Name}, args...)...)
}

// Route sends everything not on a link of n through gateway.
func (n *NS) Route(gateway string) { n.IP("route", "add", "default", "via", gateway) }

// Forwarding makes n a router.
func (n *NS) Forwarding() { n.Sysctl("ipv4/ip_forward", "1") }

// Sysctl writes one of n's network settings under /proc/sys/net.
func (n *NS) Sysctl(key, value string) {
	n.lab.t.Helper()
	err := n.Do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys/net", key), []byte(value), 0o644)
	})
	if err != nil {
		n.lab.t.Fatalf("%s: net.%s=%s: %v", n.Name, strings.ReplaceAll(key, "/", "."), value, err)
	}
}

// Nftables replaces n's whole nftables ruleset with rules, in nft's own
// syntax.
func (n *NS) Nftables(rules string) {
	n.lab.t.Helper()
	cmd := n.Command(n.lab.nft, "-f", "-")
	cmd.Stdin = strings.NewReader("flush ruleset\n" + rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.lab.t.Fatalf("%s: nft: %v\n%s\nrules:\n%s", n.Name, err, out, rules)
	}
}

// Command prepares name with args to run inside n. The process is killed
// if the test's process dies (Pdeathsig, which Linux sends when the thread
// that started the process ends: see Do).
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(n.lab.ip, append([]string{"netns", "exec", n.Name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// WrapCommand turns cmd, not yet started, into the same command run inside
// n, for code that builds its own exec.Cmd such as a browser launcher. Like
// Command's, the process is killed if the test's process dies.
func (n *NS) WrapCommand(cmd *exec.Cmd) {
	cmd.Args = append([]string{n.lab.ip, "netns", "exec", n.Name}, cmd.Args...)
	cmd.Path = n.lab.ip
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// DialContext connects from inside n, for an http.Transport or a
// websocket dialer in the test's own process.
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		conn = c
		return err
	})
	return conn, err
}

// Do runs f on an operating system thread that has entered n, and returns
// its error. Sockets f opens stay in n. The thread then goes back to its
// own namespace and to the runtime: it never ends, because Command's
// processes are killed when the thread that started them ends
// (Pdeathsig), and any thread may have started one. Only a thread that
// cannot go back is discarded.
func (n *NS) Do(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open this thread's namespace: %w", err)
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open(filepath.Join(netnsDir, n.Name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open namespace %s: %w", n.Name, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter namespace %s: %w", n.Name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
			// Still in n: the thread ends with this goroutine.
			done <- errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", n.Name, err))
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

func (l *Lab) run(name string, args ...string) {
	l.t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		l.t.Fatalf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
}
