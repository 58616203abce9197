package relay_test

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/openconsult/openconsult/relay"
)

func ExampleMintCredential() {
	now := time.Unix(1700000000, 0)
	user, pass := relay.MintCredential([]byte("secret"), "g_1", time.Hour, now)
	fmt.Println(user)
	fmt.Println(pass)
	// Output:
	// 1700003600:g_1
	// ihwc9gSCxNnEz+Asj51MJmW5u+Q=
}

func ExamplePeerPolicy_Check() {
	policy := relay.PeerPolicy{
		Allow: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")},  // the SFU's subnet
		Deny:  []netip.Prefix{netip.MustParsePrefix("10.20.99.0/24")}, // but not its management range
	}
	for _, ip := range []string{"198.51.100.7", "10.20.1.5", "10.20.99.1", "::ffff:127.0.0.1", "169.254.169.254"} {
		ok, class := policy.Check(netip.MustParseAddr(ip))
		fmt.Printf("%s ok=%v class=%q\n", ip, ok, class)
	}
	// Output:
	// 198.51.100.7 ok=true class=""
	// 10.20.1.5 ok=true class=""
	// 10.20.99.1 ok=false class="denied"
	// ::ffff:127.0.0.1 ok=false class="loopback"
	// 169.254.169.254 ok=false class="metadata"
}

func ExampleParseUsersFile() {
	users, err := relay.ParseUsersFile(strings.NewReader(`
# Lobby kiosks that cannot fetch time-limited credentials
kiosk-1:correct-horse-battery
kiosk-2:staple:with:colons
`))
	fmt.Println(len(users), users["kiosk-2"], err)

	_, err = relay.ParseUsersFile(strings.NewReader("kiosk-3:short\n"))
	fmt.Println(err)
	// Output:
	// 2 staple:with:colons <nil>
	// users file line 1: password shorter than 12 characters
}
