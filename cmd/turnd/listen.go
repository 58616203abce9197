package main

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// addrList is -listen: one or more "host:port" addresses, each with a UDP
// and a TCP listener, given by repeating the flag, separated by commas, or
// as an array in the config file. The default goes as soon as one is
// given.
type addrList struct {
	Values    []string
	defaulted bool
}

func (l *addrList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.Values, ",")
}

func (l *addrList) Set(v string) error {
	if l.defaulted {
		l.Values, l.defaulted = nil, false
	}
	for part := range strings.SplitSeq(v, ",") {
		a := strings.TrimSpace(part)
		_, port, err := net.SplitHostPort(a)
		if err != nil || port == "" {
			return fmt.Errorf("%q is not a listen address (want host:port or :port)", a)
		}
		for _, have := range l.Values {
			if have == a && port != "0" {
				return fmt.Errorf("%q is given twice", a)
			}
		}
		l.Values = append(l.Values, a)
	}
	return nil
}

// Reset forgets the values, so that a lower-precedence source replaces
// rather than appends.
func (l *addrList) Reset() { l.Values, l.defaulted = nil, false }

// ipv4 returns the first address whose host is an IPv4 address or a
// wildcard, from which the relay's IPv4 bind address is found, or the
// first address.
func (l *addrList) ipv4() string {
	for _, a := range l.Values {
		host, _, _ := net.SplitHostPort(a)
		if ip, err := netip.ParseAddr(host); host == "" || err == nil && (ip.Is4() || ip.IsUnspecified()) {
			return a
		}
	}
	if len(l.Values) > 0 {
		return l.Values[0]
	}
	return ""
}
