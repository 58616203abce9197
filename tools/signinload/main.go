// Command signinload measures the memory a burst of sign-ins costs the
// signal server. It starts a real `signal -dev` with its own data
// directory, opens one TLS connection per attempt from several loopback
// addresses (127.0.0.x, each a client address of its own for the rate
// limits), then sends every sign-in at once and samples the process's
// resident memory from /proc while they are answered. It prints the peak
// RSS and how many attempts got each status: 401 (the password was
// checked), 503 (every hashing slot stayed busy; Retry-After), 429 (the
// address's rate limit).
//
//	go build -o bin/ ./cmd/signal && go run ./tools/signinload -signal ./bin/signal -attempts 200 -addresses 20
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openconsult/openconsult/internal/procstat"
	"github.com/openconsult/openconsult/tools/internal/devsignal"
)

type options struct {
	signal     string
	attempts   int
	addresses  int
	sample     time.Duration
	signalArgs stringList
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var o options
	flag.StringVar(&o.signal, "signal", "./bin/signal", "path of the signal binary to measure")
	flag.IntVar(&o.attempts, "attempts", 200, "sign-ins sent at once")
	flag.IntVar(&o.addresses, "addresses", 20, "loopback client addresses (127.0.0.10 onward) the attempts come from")
	flag.DurationVar(&o.sample, "sample", 5*time.Millisecond, "how often the server's RSS is read")
	flag.Var(&o.signalArgs, "signal-arg", "extra flag for signal, such as -signal-arg=-password-hash-concurrency=4; repeatable")
	flag.Parse()
	if o.attempts < 1 || o.addresses < 1 || o.addresses > 200 {
		fmt.Fprintln(os.Stderr, "signinload: -attempts must be at least 1 and -addresses 1 to 200")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "signinload:", err)
		os.Exit(1)
	}
	r.print(os.Stdout)
}

// result is one run's figures.
type result struct {
	attempts, addresses int
	idleRSS, peakRSS    int64
	codes               map[int]int
	errors              int
	seconds             float64
}

var codeMeaning = map[int]string{
	http.StatusUnauthorized:       "(checked)",
	http.StatusServiceUnavailable: "(busy)",
	http.StatusTooManyRequests:    "(rate limit)",
}

func (r result) print(w io.Writer) {
	row := func(label string, format string, args ...any) {
		fmt.Fprintf(w, "%-26s"+format+"\n", append([]any{label}, args...)...)
	}
	row("sign-ins at once", "%d from %d addresses", r.attempts, r.addresses)
	row("server RSS idle", "%d MiB", r.idleRSS>>20)
	row("server RSS peak", "%d MiB", r.peakRSS>>20)
	codes := []int{http.StatusUnauthorized, http.StatusServiceUnavailable, http.StatusTooManyRequests}
	for c := range r.codes {
		if !slices.Contains(codes, c) {
			codes = append(codes, c)
		}
	}
	for _, c := range codes {
		row(fmt.Sprintf("answered %d %s", c, codeMeaning[c]), "%d", r.codes[c])
	}
	row("no answer (error)", "%d", r.errors)
	row("all answered after", "%.1f s", r.seconds)
}

func run(ctx context.Context, o options) (result, error) {
	dir, err := os.MkdirTemp("", "signinload-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	// Neither the relay nor the media node: the burst is the site's alone.
	sig, err := devsignal.StartLean(ctx, o.signal, dir, append([]string{"-relay-listen", "off", "-sfu-embedded=false"}, o.signalArgs...))
	if err != nil {
		return result{}, err
	}
	defer sig.Stop()

	clients, err := connect(ctx, sig, o)
	if err != nil {
		return result{}, err
	}
	time.Sleep(time.Second) // let the handshakes' garbage settle
	idle, err := procstat.Read(sig.PID())
	if err != nil {
		return result{}, err
	}
	res := result{attempts: o.attempts, addresses: o.addresses, idleRSS: idle.RSSBytes, codes: map[int]int{}}

	sampleCtx, stopSampling := context.WithCancel(ctx)
	peak := make(chan int64, 1)
	go func() { peak <- samplePeak(sampleCtx, sig.PID(), o.sample) }() // ends with stopSampling

	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			code, err := signIn(ctx, sig, c, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.errors++
				return
			}
			res.codes[code]++
		})
	}
	wg.Wait()
	res.seconds = time.Since(start).Seconds()
	stopSampling()
	res.peakRSS = <-peak
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	return res, nil
}

// samplePeak reads the process's RSS every interval until ctx ends and
// returns the highest value seen.
func samplePeak(ctx context.Context, pid int, every time.Duration) int64 {
	var peak int64
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if u, err := procstat.Read(pid); err == nil && u.RSSBytes > peak {
			peak = u.RSSBytes
		}
		select {
		case <-ctx.Done():
			return peak
		case <-t.C:
		}
	}
}

// connect opens one TLS connection per attempt, attempt i from address
// 127.0.0.(10 + i mod addresses), so the burst measures the sign-ins and
// not the handshakes.
func connect(ctx context.Context, s *devsignal.Proc, o options) ([]*http.Client, error) {
	clients := make([]*http.Client, o.attempts)
	errs := make([]error, o.attempts)
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = &http.Client{
			Transport: &http.Transport{
				DialContext:         s.Dialer(net.IPv4(127, 0, 0, byte(10+i%o.addresses))),
				TLSClientConfig:     s.TLSConfig(),
				MaxIdleConnsPerHost: 1,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       5 * time.Minute,
		}
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, "GET", s.Public.JoinPath("/healthz").String(), nil)
			if err != nil {
				errs[i] = err
				return
			}
			resp, err := clients[i].Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	return clients, errors.Join(errs...)
}

// signIn posts one sign-in for an unknown user: the server hashes the
// password all the same (so that the answer says nothing about the
// username), which is the cost under test.
func signIn(ctx context.Context, s *devsignal.Proc, c *http.Client, i int) (int, error) {
	form := url.Values{"username": {fmt.Sprintf("load.user.%d", i)}, "password": {fmt.Sprintf("not the password %d", i)}}
	req, err := http.NewRequestWithContext(ctx, "POST", s.Public.JoinPath("/signin").String(), strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.Public.String())
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
