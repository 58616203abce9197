package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/openconsult/openconsult/internal/procstat"
	"github.com/openconsult/openconsult/tools/internal/devsignal"
)

// pair is one consult's two tabs: the clinician's on one replica, the
// patient's on the other.
type pair struct {
	consult   devsignal.Consult
	host, pat *tab
}

// tab is an open WebSocket and what its reader saw.
type tab struct {
	ws *websocket.Conn
	mu sync.Mutex // orders writes
}

func (t *tab) send(v any) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_ = t.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return t.ws.WriteJSON(v)
}

// latencies collects the fan-out times measured after the warm-up.
type latencies struct {
	mu        sync.Mutex
	d         []time.Duration
	delivered int
}

func (l *latencies) add(d time.Duration, counted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if counted {
		l.d = append(l.d, d)
		l.delivered++
	}
}

func run(ctx context.Context, o options, log io.Writer) (Result, error) {
	begin := time.Now()
	dsn, drop, err := freshSchema(ctx, o.database)
	if err != nil {
		return Result{}, err
	}
	defer drop()
	dir, err := os.MkdirTemp("", "replicaload-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	if out, err := exec.CommandContext(ctx, o.signal, "audit", "keygen", "-dev", "-data-dir", dir,
		"-audit-key-file", filepath.Join(dir, "audit-signing.key")).CombinedOutput(); err != nil {
		return Result{}, fmt.Errorf("audit keygen: %v: %s", err, out)
	}
	shared := []string{"-database", dsn, "-redis", o.redis, "-turn-secret", rand.Text()}
	start := func(name string) (*devsignal.Proc, error) {
		return devsignal.Start(ctx, o.signal, dir, append([]string{"-audit-checkpoint-dir", filepath.Join(dir, "checkpoints-"+name)}, shared...))
	}
	a, err := start("a")
	if err != nil {
		return Result{}, err
	}
	defer a.Stop()
	clinician, err := a.ClinicianSession(ctx)
	if err != nil {
		return Result{}, err
	}
	b, err := start("b")
	if err != nil {
		return Result{}, err
	}
	defer b.Stop()
	replicas := []*devsignal.Proc{a, b}
	fmt.Fprintf(log, "replicaload: two replicas up; opening %d tabs\n", o.sockets)

	var dropped atomic.Int64
	var closing atomic.Bool
	var readers sync.WaitGroup
	lat := &latencies{}
	// Each tab is read from the moment it is set up, so that it answers the
	// server's heartbeats while the others are set up.
	reading := func(t *tab) { readers.Go(func() { read(t, lat, &dropped, &closing) }) }
	pairs, err := openPairs(ctx, replicas, clinician, o, reading)
	defer func() {
		for _, p := range pairs {
			for _, t := range []*tab{p.host, p.pat} {
				if t != nil {
					t.ws.Close()
				}
			}
		}
	}()
	if err != nil {
		keepLogs(replicas, log)
		return Result{}, fmt.Errorf("%w\nreplica 1's warnings:\n%s\nreplica 2's warnings:\n%s", err, warnings(a), warnings(b))
	}
	setup := time.Since(begin)
	fmt.Fprintf(log, "replicaload: %d consults split over both replicas; chat for %s after %s warm-up\n", len(pairs), o.duration, o.warmup)

	sent := sendChat(ctx, pairs, o, lat)
	select { // the last messages arrive
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
	}
	r := Result{Sockets: o.sockets, Consults: len(pairs), Rate: o.rate, Seconds: o.duration.Seconds(), Sent: sent, Together: o.together,
		SetupSecs: setup.Seconds()}
	lat.mu.Lock()
	r.Delivered = lat.delivered
	d := slices.Clone(lat.d)
	lat.mu.Unlock()
	slices.Sort(d)
	if len(d) > 0 {
		pct := func(p float64) float64 { return ms(d[min(len(d)-1, int(p*float64(len(d))))]) }
		r.P50ms, r.P90ms, r.P99ms, r.MaxMs = pct(0.50), pct(0.90), pct(0.99), ms(d[len(d)-1])
	}
	for _, p := range replicas {
		u, err := procstat.Read(p.PID())
		if err != nil {
			return Result{}, err
		}
		g, err := goroutines(ctx, p)
		if err != nil {
			return Result{}, err
		}
		r.Replicas = append(r.Replicas, Replica{Tabs: o.sockets / 2, RSSMiB: float64(u.RSSBytes) / (1 << 20), Goroutines: g})
	}
	closing.Store(true)
	r.Dropped = int(dropped.Load())
	if r.Dropped > 0 || r.Delivered < r.Sent {
		keepLogs(replicas, log)
	}
	return r, nil
}

// keepLogs writes the replicas' logs where a failed run can be examined.
func keepLogs(replicas []*devsignal.Proc, log io.Writer) {
	for i, p := range replicas {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("replicaload-replica-%d.log", i+1))
		if os.WriteFile(path, []byte(p.Log()), 0o600) == nil {
			fmt.Fprintf(log, "replicaload: replica %d's log is in %s\n", i+1, path)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// freshSchema creates a schema of the run's own in the database and
// returns a URL that selects it, and how to drop it.
func freshSchema(ctx context.Context, base string) (string, func(), error) {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	schema := "replicaload_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("PostgreSQL at -database: %w", err)
	}
	drop := func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(c, "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// openPairs creates a consult per pair, opens the clinician's tab on one
// replica (which takes the consult) and the patient's on the other, and
// admits the patient.
func openPairs(ctx context.Context, replicas []*devsignal.Proc, clinician *http.Client, o options, reading func(*tab)) ([]pair, error) {
	pairs := make([]pair, o.sockets/2)
	var mu sync.Mutex
	err := forEach(ctx, len(pairs), o.workers, func(ctx context.Context, i int) error {
		own, other := replicas[i%2], replicas[(i+1)%2]
		if o.together {
			other = own // the baseline: no consult crosses replicas
		}
		c, err := own.CreateConsult(ctx, clinician, fmt.Sprintf("split %d", i+1))
		if err != nil {
			return err
		}
		ck, err := own.JoinAsGuest(ctx, c.Link, fmt.Sprintf("Patient %d", i+1), i)
		if err != nil {
			return err
		}
		var cookies []string
		for _, k := range clinician.Jar.Cookies(own.Public) {
			cookies = append(cookies, k.Name+"="+k.Value)
		}
		host, _, err := dial(ctx, own, c.ID, strings.Join(cookies, "; "), nil)
		if err != nil {
			return fmt.Errorf("clinician's tab: %w", err)
		}
		pat, member, err := dial(ctx, other, c.ID, ck.Name+"="+ck.Value, devsignal.GuestSource(i))
		if err != nil {
			host.ws.Close()
			return fmt.Errorf("patient's tab: %w", err)
		}
		mu.Lock()
		pairs[i] = pair{consult: c, host: host, pat: pat}
		mu.Unlock()
		reading(host)
		if err := host.send(map[string]string{"type": "admit", "member": member}); err != nil {
			return err
		}
		if err := waitFor(pat.ws, "admitted"); err != nil {
			return err
		}
		reading(pat)
		return nil
	})
	return pairs, err
}

// dial opens a call page's WebSocket and returns it with the member id
// the server's welcome names.
func dial(ctx context.Context, p *devsignal.Proc, consultID, cookie string, source []byte) (*tab, string, error) {
	d := websocket.Dialer{NetDialContext: p.Dialer(source), TLSClientConfig: p.TLSConfig(), HandshakeTimeout: 15 * time.Second,
		ReadBufferSize: 1024, WriteBufferSize: 1024}
	u := *p.Public
	u.Scheme, u.Path = "wss", "/ws/consults/"+consultID
	ws, resp, err := d.DialContext(ctx, u.String(), http.Header{"Origin": {p.Public.String()}, "Cookie": {cookie}})
	if err != nil {
		if resp != nil {
			return nil, "", fmt.Errorf("%s: %w", resp.Status, err)
		}
		return nil, "", err
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	var welcome struct{ Type, Member string }
	if err := ws.ReadJSON(&welcome); err != nil || welcome.Type != "welcome" {
		ws.Close()
		return nil, "", fmt.Errorf("no welcome (%q): %v", welcome.Type, err)
	}
	return &tab{ws: ws}, welcome.Member, nil
}

func waitFor(ws *websocket.Conn, typ string) error {
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var m struct{ Type string }
		if err := ws.ReadJSON(&m); err != nil {
			return fmt.Errorf("waiting for %q: %w", typ, err)
		}
		if m.Type == typ {
			_ = ws.SetReadDeadline(time.Time{})
			return nil
		}
	}
}

// read reads a tab until it closes; a chat message another member sent
// ("t <sender> <unix nanoseconds> <counted>") gives one latency.
func read(t *tab, lat *latencies, dropped *atomic.Int64, closing *atomic.Bool) {
	_ = t.ws.SetReadDeadline(time.Time{})
	self := fmt.Sprintf("%p", t)
	for {
		_, b, err := t.ws.ReadMessage()
		if err != nil {
			if !closing.Load() && dropped.Add(1) <= 3 {
				fmt.Fprintf(os.Stderr, "replicaload: a tab closed: %v\n", err)
			}
			return
		}
		now := time.Now()
		var m struct{ Type, Text string }
		if json.Unmarshal(b, &m) != nil || m.Type != "chat" {
			continue
		}
		f := strings.Fields(m.Text)
		if len(f) != 4 || f[0] != "t" || f[1] == self {
			continue
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		lat.add(now.Sub(time.Unix(0, ns)), f[3] == "1")
	}
}

// sendChat sends chat at the rate, alternating the consults and, within
// each, the clinician and the patient; it returns how many counted
// messages it sent.
func sendChat(ctx context.Context, pairs []pair, o options, lat *latencies) int {
	tick := time.NewTicker(time.Second / time.Duration(o.rate))
	defer tick.Stop()
	warm := time.Now().Add(o.warmup)
	end := warm.Add(o.duration)
	sent := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return sent
		case now := <-tick.C:
			if now.After(end) {
				return sent
			}
			p := pairs[i%len(pairs)]
			from := p.host
			if (i/len(pairs))%2 == 1 {
				from = p.pat
			}
			counted := "0"
			if now.After(warm) {
				counted = "1"
				sent++
			}
			text := fmt.Sprintf("t %p %d %s", from, time.Now().UnixNano(), counted)
			if err := from.send(map[string]string{"type": "chat", "text": text}); err != nil && counted == "1" {
				sent--
			}
		}
	}
}

// forEach runs f for 0..n-1 on workers goroutines and returns the first
// error, after which the remaining calls are skipped.
func forEach(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if ctx.Err() == nil {
					if err := f(ctx, i); err != nil {
						cancel(err)
					}
				}
			}
		})
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// goroutines reads go_goroutines from a replica's /metrics.
func goroutines(ctx context.Context, p *devsignal.Proc) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no go_goroutines in /metrics of %s", p.Admin)
}

// warnings is the end of a replica's warnings and errors.
func warnings(p *devsignal.Proc) string {
	var out []string
	for line := range strings.Lines(p.Log()) {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
		}
	}
	return devsignal.Tail(strings.Join(out, ""))
}
