package sfulink

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/media"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Node is the local media node the link exposes, usually a *media.SFU.
	Node media.Node
	Log  *slog.Logger
	// Heartbeat is the ping interval; 0 for DefaultHeartbeat.
	Heartbeat time.Duration
}

// Server exposes a local media.Node to signal processes. It is an
// http.Handler for the node's link listener, which must be served with a
// TLS configuration that requires client certificates (see ServerTLS); the
// handler refuses any request without a verified certificate as well, so a
// listener configured by mistake fails closed.
type Server struct {
	node      media.Node
	log       *slog.Logger
	heartbeat time.Duration
	upgrader  websocket.Upgrader

	mu       sync.Mutex
	closing  bool
	conns    map[*serverConn]struct{}
	members  map[memberKey]*serverSession // the live session of each member, across links
	handlers sync.WaitGroup               // ServeHTTP calls that hold a link
}

type memberKey struct{ room, member string }

// NewServer returns a Server for cfg.Node.
func NewServer(cfg ServerConfig) *Server {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		node: cfg.Node, log: log, heartbeat: cfg.Heartbeat,
		upgrader: websocket.Upgrader{
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   16 << 10,
			WriteBufferSize:  16 << 10,
			// No browser has any business here; a request that carries an
			// Origin is not from a signal process.
			CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
		},
		conns:   map[*serverConn]struct{}{},
		members: map[memberKey]*serverSession{},
	}
}

// ServeHTTP upgrades an authenticated signal process's request to a link
// and serves it until the link ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		s.log.Warn("sfulink refused a peer without a verified client certificate", "remote", r.RemoteAddr)
		http.Error(w, "client certificate required", http.StatusForbidden)
		return
	}
	peer := r.TLS.VerifiedChains[0][0].Subject.CommonName
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		http.Error(w, "node shutting down", http.StatusServiceUnavailable)
		return
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()

	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Warn("sfulink upgrade failed", "peer", peer, "err", err)
		return
	}
	c := newServerConn(s, ws, peer)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.log.Info("sfulink link opened", "peer", peer)
	err = c.serve()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.log.Info("sfulink link closed", "peer", peer, "err", err)
}

// Shutdown ends every session with a "shutdown" closed message, so that
// signal moves those consults to another node, refuses new links and
// joins, and closes each link once its queued messages are out. It waits
// for every link goroutine, or until ctx ends and then stops the rest at
// once.
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.refuseNew()

	grace := 2 * time.Second
	if d, ok := ctx.Deadline(); ok {
		grace = time.Until(d)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		c.endAll(&message{Type: typeClosed, Code: codeShutdown, Error: "media node shutting down"})
		wg.Go(func() { c.ep.drain(grace) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); s.handlers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// refuseNew makes the server refuse new links and joins, and returns the
// links open now.
func (s *Server) refuseNew() []*serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// Close stops every link at once (their sessions on the node are closed)
// and waits for the link goroutines.
func (s *Server) Close() {
	conns := s.refuseNew()
	for _, c := range conns {
		c.ep.stop()
	}
	s.handlers.Wait()
}

// Links reports how many signal processes are connected.
func (s *Server) Links() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// claim records ss as its member's live session and ends the session it
// replaces, which the node has already closed (a member that joins again
// replaces its session without a Closed event), on whichever link it was.
func (s *Server) claim(ss *serverSession) {
	key := memberKey{ss.room, ss.member}
	s.mu.Lock()
	old := s.members[key]
	s.members[key] = ss
	s.mu.Unlock()
	if old != nil && old != ss {
		old.end(&message{Type: typeReplaced, SID: old.sid})
	}
}

func (s *Server) release(ss *serverSession) {
	key := memberKey{ss.room, ss.member}
	s.mu.Lock()
	if s.members[key] == ss {
		delete(s.members, key)
	}
	s.mu.Unlock()
}
