package main

import (
	"flag"
	"log/slog"
	"net"
	"strings"

	"github.com/openconsult/openconsult/internal/config"
	"github.com/openconsult/openconsult/internal/proxyproto"
)

// proxyProtocol is -proxy-protocol-from and -proxy-protocol-required: the
// TCP proxies in front of the HTTPS listener (turnd -https-backend with
// -https-backend-proxy-protocol, HAProxy, a cloud load balancer) whose
// PROXY protocol header names each client's address.
type proxyProtocol struct {
	from     prefixCSV
	required bool
}

func (p *proxyProtocol) register(fs *flag.FlagSet) {
	fs.Var(&p.from, "proxy-protocol-from", "`CIDR` (or address) of a TCP proxy in front of -listen, such as turnd with -https-backend-proxy-protocol, whose PROXY protocol header (version 1 or 2) names the client's address for rate limits, lockouts and the audit log; repeatable or comma-separated; a PROXY header from any other address is refused (default none: the header is never read)")
	fs.BoolVar(&p.required, "proxy-protocol-required", true, "refuse a connection from a -proxy-protocol-from address that sends no PROXY header; false serves it with the proxy's own address")
}

func (p *proxyProtocol) on() bool { return len(p.from.Values) > 0 }

// summary describes the setting for -check.
func (p *proxyProtocol) summary() string {
	if !p.on() {
		return ""
	}
	req := "required"
	if !p.required {
		req = "optional"
	}
	return " (PROXY protocol from " + p.from.String() + ", " + req + ")"
}

// validate checks that -proxy-protocol-required is not given alone.
func (s *settings) validateProxyProtocol() []error {
	if !s.proxyProto.on() && s.set.IsSet("proxy-protocol-required") {
		return []error{s.set.Invalid("proxy-protocol-required", "needs -proxy-protocol-from")}
	}
	return nil
}

// withProxyProtocol wraps ln so that it reads the PROXY header of the
// trusted proxies' connections (-proxy-protocol-from).
func withProxyProtocol(s *settings, ln net.Listener, log *slog.Logger) net.Listener {
	log.Info("PROXY protocol read from trusted proxies", "listener", "https", "from", s.proxyProto.from.String(), "required", s.proxyProto.required)
	return proxyproto.NewListener(ln, proxyproto.Config{Trusted: s.proxyProto.from.Values, Required: s.proxyProto.required, Log: log})
}

// prefixCSV is a repeatable CIDR flag whose values may also be separated
// by commas.
type prefixCSV struct{ config.PrefixList }

func (l *prefixCSV) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if err := l.PrefixList.Set(strings.TrimSpace(part)); err != nil {
			return err
		}
	}
	return nil
}
