package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// With -direct the media node runs in a child process (this program with
// -serve-node), so that its CPU time and memory are the SFU's alone and
// not the participants'. The two processes talk JSON lines over the
// child's stdin and stdout: requests to sessions one way, the node's
// events the other.

type nodeRequest struct {
	Op        string `json:"op"` // join, offer, answer, view; goroutines for the node's count; record, recstats; profile-start, profile-stop; mallocs; held
	Room      string `json:"room,omitempty"`
	Member    string `json:"member"`
	SDP       string `json:"sdp,omitempty"`
	Publisher string `json:"publisher,omitempty"`
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
	Path      string `json:"path,omitempty"` // profile-start, profile-stop: where the profiles go, without extension
}

type nodeEvent struct {
	Member string     `json:"member"`
	Event  string     `json:"event"` // joined, answer, offer, speaker, closed, error, goroutines, recording, recstats, profile, mallocs, held
	SDP    string     `json:"sdp,omitempty"`
	Text   string     `json:"text,omitempty"` // the speaker, or the error
	Count  int        `json:"count,omitempty"`
	Rec    *recTotals `json:"rec,omitempty"`
	// Mallocs answers a mallocs request: the heap allocations the node's
	// process has made since it started.
	Mallocs uint64 `json:"mallocs,omitempty"`
	// Held answers a held request: the process's memory after a collection.
	Held *heldMemory `json:"held,omitempty"`
}

// nodeConfig is the media node of -direct: on loopback, with one UDP port
// for everyone when udpListen is set, on the node's own transport when
// own is.
func nodeConfig(udpListen string, own bool) media.Config {
	return media.Config{Log: slog.New(slog.DiscardHandler), Settings: nodetest.LoopbackSettings(), UDPListen: udpListen, OwnTransport: own}
}

// serveNode runs an in-process node for a parent sfuload until its stdin
// closes. Each member's requests run in order on that member's goroutine,
// as signal runs them, because an offer blocks while the node gathers.
// args are the child's flags after -serve-node.
func serveNode(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("sfuload -serve-node", flag.ContinueOnError)
	udpListen := fs.String("udp-listen", "", "the node's shared UDP address")
	own := fs.Bool("own-transport", false, "run sessions on the node's own transport")
	memRate := fs.Int("mem-profile-rate", 0, "runtime.MemProfileRate, for -node-profile; 0 leaves the default")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *memRate > 0 {
		runtime.MemProfileRate = *memRate
	}
	node, err := media.New(nodeConfig(*udpListen, *own))
	if err != nil {
		return fmt.Errorf("media node: %w", err)
	}
	defer node.Close()
	defer func() {
		w := node.UDPWrites()
		fmt.Fprintf(os.Stderr, "node: shared UDP port: %d sendto, %d datagrams in %d sendmmsg\n", w.Single, w.Batched, w.Batches)
	}()
	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(e nodeEvent) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = enc.Encode(e)
	}
	var recs recCounters
	var prof profiler
	emit(nodeEvent{Event: "ready"}) // the memory baseline starts here
	queues := map[string]chan *nodeRequest{}
	var wg sync.WaitGroup
	defer func() {
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
	}()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var req nodeRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("request: %w", err)
		}
		switch req.Op {
		case "goroutines":
			emit(nodeEvent{Event: "goroutines", Count: runtime.NumGoroutine()})
			continue
		case "record":
			e := nodeEvent{Event: "recording"}
			if err := startRecording(context.Background(), node, req.Room, &recs); err != nil {
				e.Text = err.Error()
			}
			emit(e)
			continue
		case "recstats":
			t := recs.totals()
			emit(nodeEvent{Event: "recstats", Rec: &t})
			continue
		case "mallocs":
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			emit(nodeEvent{Event: "mallocs", Mallocs: m.Mallocs})
			continue
		case "held":
			e := nodeEvent{Event: "held"}
			if h, err := readHeldMemory(); err != nil {
				e.Text = err.Error()
			} else {
				e.Held = &h
			}
			emit(e)
			continue
		case "profile-start", "profile-stop":
			e := nodeEvent{Event: "profile"}
			if err := prof.do(req.Op, req.Path); err != nil {
				e.Text = err.Error()
			}
			emit(e)
			continue
		}
		q, ok := queues[req.Member]
		if !ok {
			// Pointers: a queue of 64 requests by value took 7 KiB per
			// member, which the node's memory figures counted.
			q = make(chan *nodeRequest, 64)
			queues[req.Member] = q
			wg.Go(func() { memberWorker(node, q, emit) })
		}
		q <- &req
	}
	return sc.Err()
}

// memberWorker applies one member's requests to its session.
func memberWorker(node *media.SFU, q <-chan *nodeRequest, emit func(nodeEvent)) {
	var sess media.Participant
	for req := range q {
		var err error
		switch {
		case req.Op == "join":
			sess, err = node.Join(context.Background(), req.Room, req.Member, childEvents{req.Member, emit})
			if err == nil {
				emit(nodeEvent{Member: req.Member, Event: "joined"})
			}
		case sess == nil:
			err = errors.New(req.Op + " before join")
		case req.Op == "offer":
			err = sess.Offer(req.SDP)
		case req.Op == "answer":
			err = sess.Answer(req.SDP)
		case req.Op == "view":
			err = sess.View(req.Publisher, req.Width, req.Height)
		}
		if err != nil {
			emit(nodeEvent{Member: req.Member, Event: "error", Text: fmt.Sprintf("%s: %v", req.Op, err)})
		}
	}
	if sess != nil {
		sess.Close()
	}
}

// childEvents passes a session's events to the parent.
type childEvents struct {
	member string
	emit   func(nodeEvent)
}

func (c childEvents) Answer(sdp string) {
	c.emit(nodeEvent{Member: c.member, Event: "answer", SDP: sdp})
}
func (c childEvents) Offer(sdp string) { c.emit(nodeEvent{Member: c.member, Event: "offer", SDP: sdp}) }
func (c childEvents) Speaker(m string) {
	c.emit(nodeEvent{Member: c.member, Event: "speaker", Text: m})
}
func (c childEvents) Closed(err error) {
	c.emit(nodeEvent{Member: c.member, Event: "closed", Text: fmt.Sprint(err)})
}

// nodeProc is the parent's side of a -serve-node child.
type nodeProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	inMu  sync.Mutex
	done  chan struct{}  // the event reader ended
	ready chan struct{}  // the child's node exists
	count chan int       // answers to goroutines requests
	reply chan nodeEvent // answers to record and recstats requests
	ask   sync.Mutex     // one record or recstats request at a time

	mu      sync.Mutex
	members map[string]*peer
	joined  map[string]chan error
}

func startNodeProc(udpListen string, own, profile bool) (*nodeProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("media node process: %w", err)
	}
	args := []string{"-serve-node", "-udp-listen", udpListen}
	if own {
		args = append(args, "-own-transport")
	}
	if profile {
		args = append(args, "-mem-profile-rate", "4096") // a sample every 4 KiB, enough to tell pion's buffers apart
	}
	n := &nodeProc{cmd: exec.Command(self, args...), done: make(chan struct{}), ready: make(chan struct{}), count: make(chan int, 1), reply: make(chan nodeEvent, 1), members: map[string]*peer{}, joined: map[string]chan error{}}
	n.cmd.Stderr = os.Stderr
	if n.in, err = n.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("media node process: %w", err)
	}
	go n.readEvents(out) // ends when the child exits, which stop waits for
	select {
	case <-n.ready:
		return n, nil
	case <-n.done:
		n.stop()
		return nil, errors.New("media node process ended at start")
	case <-time.After(15 * time.Second):
		n.stop()
		return nil, errors.New("media node process not ready within 15s")
	}
}

func (n *nodeProc) pid() int { return n.cmd.Process.Pid }

// stop closes the child's stdin, which ends its sessions and the child.
func (n *nodeProc) stop() {
	n.in.Close()
	select {
	case <-n.done:
	case <-time.After(15 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	_ = n.cmd.Wait()
}

func (n *nodeProc) send(req nodeRequest) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	n.inMu.Lock()
	defer n.inMu.Unlock()
	_, err = n.in.Write(append(b, '\n'))
	return err
}

func (n *nodeProc) readEvents(out io.Reader) {
	defer close(n.done)
	dec := json.NewDecoder(out)
	for {
		var e nodeEvent
		if err := dec.Decode(&e); err != nil {
			return
		}
		switch e.Event {
		case "ready":
			close(n.ready)
			continue
		case "goroutines":
			select {
			case n.count <- e.Count:
			default: // nobody asked
			}
			continue
		case "recording", "recstats", "profile", "mallocs", "held":
			select {
			case n.reply <- e:
			default: // nobody asked
			}
			continue
		}
		n.mu.Lock()
		p, joined := n.members[e.Member], n.joined[e.Member]
		if joined != nil && (e.Event == "joined" || e.Event == "error") {
			delete(n.joined, e.Member) // the join's outcome; later errors are the session's
		} else {
			joined = nil
		}
		n.mu.Unlock()
		if p == nil {
			continue
		}
		switch {
		case joined != nil && e.Event == "joined":
			joined <- nil
			continue
		case joined != nil:
			joined <- errors.New(e.Text)
			continue
		}
		switch e.Event {
		case "answer":
			p.Answer(e.SDP)
		case "offer":
			p.Offer(e.SDP)
		case "speaker":
			p.Speaker(e.Text)
		case "closed":
			p.Closed(errors.New(e.Text))
		case "error":
			p.fail(fmt.Errorf("media node: %s", e.Text))
		}
	}
}

// goroutines asks the child how many goroutines its node process runs.
func (n *nodeProc) goroutines() (int, error) {
	if err := n.send(nodeRequest{Op: "goroutines"}); err != nil {
		return 0, fmt.Errorf("media node process: %w", err)
	}
	select {
	case c := <-n.count:
		return c, nil
	case <-n.done:
		return 0, errors.New("media node process ended")
	case <-time.After(10 * time.Second):
		return 0, errors.New("media node process did not count its goroutines within 10s")
	}
}

// join opens member's session on the child and returns its side.
func (n *nodeProc) join(ctx context.Context, room, member string, p *peer) (directSession, error) {
	joined := make(chan error, 1)
	n.mu.Lock()
	n.members[member], n.joined[member] = p, joined
	n.mu.Unlock()
	if err := n.send(nodeRequest{Op: "join", Room: room, Member: member}); err != nil {
		return nil, fmt.Errorf("media node process: %w", err)
	}
	select {
	case err := <-joined:
		if err != nil {
			return nil, err
		}
	case <-n.done:
		return nil, errors.New("media node process ended")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return childSession{n, member}, nil
}

// childSession is a member's session on the child.
type childSession struct {
	n      *nodeProc
	member string
}

func (s childSession) Offer(sdp string) error {
	return s.n.send(nodeRequest{Op: "offer", Member: s.member, SDP: sdp})
}

func (s childSession) Answer(sdp string) error {
	return s.n.send(nodeRequest{Op: "answer", Member: s.member, SDP: sdp})
}

func (s childSession) View(publisher string, w, h int) error {
	return s.n.send(nodeRequest{Op: "view", Member: s.member, Publisher: publisher, Width: w, Height: h})
}

// request sends the child a record or recstats request and waits for its
// answer.
func (n *nodeProc) request(req nodeRequest) (nodeEvent, error) {
	n.ask.Lock()
	defer n.ask.Unlock()
	if err := n.send(req); err != nil {
		return nodeEvent{}, fmt.Errorf("media node process: %w", err)
	}
	select {
	case e := <-n.reply:
		if e.Text != "" {
			return e, errors.New(e.Text)
		}
		return e, nil
	case <-n.done:
		return nodeEvent{}, errors.New("media node process ended")
	case <-time.After(10 * time.Second):
		return nodeEvent{}, fmt.Errorf("media node process did not answer %s within 10s", req.Op)
	}
}

// record starts recording room on the child's node.
func (n *nodeProc) record(_ context.Context, room string) error {
	_, err := n.request(nodeRequest{Op: "record", Room: room})
	return err
}

// recStats returns the child's recording figures.
func (n *nodeProc) recStats() (recTotals, error) {
	e, err := n.request(nodeRequest{Op: "recstats"})
	if err != nil || e.Rec == nil {
		return recTotals{}, fmt.Errorf("recording figures: %v", err)
	}
	return *e.Rec, nil
}

// profile starts the child's CPU profile into path.cpu, or stops it and
// writes the heap in use into path.heap.
func (n *nodeProc) profile(op, path string) error {
	_, err := n.request(nodeRequest{Op: op, Path: path})
	return err
}

// mallocs asks the child how many heap allocations its process has made.
func (n *nodeProc) mallocs() (uint64, error) {
	e, err := n.request(nodeRequest{Op: "mallocs"})
	return e.Mallocs, err
}

// held asks the child for its memory after a collection.
func (n *nodeProc) held() (heldMemory, error) {
	e, err := n.request(nodeRequest{Op: "held"})
	if err != nil || e.Held == nil {
		return heldMemory{}, fmt.Errorf("held memory: %v", err)
	}
	return *e.Held, nil
}
