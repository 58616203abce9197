package site

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/store"
)

// Lobbies is what the waiting-room alerts need from the live rooms: how
// many wait in each consult's lobby, never who.
type Lobbies interface {
	Waiting() map[string]int
}

// Timing of the waiting-room event stream. The stream ends after
// waitingStreamLife; the browser's EventSource reconnects, which checks the
// session again.
const (
	waitingPoll       = time.Second
	waitingHeartbeat  = 25 * time.Second
	waitingStreamLife = 5 * time.Minute
	waitingWrite      = 10 * time.Second
)

// waitingEvent is one message of the stream: the number waiting in each of
// the clinician's consults that has someone waiting, and the total.
type waitingEvent struct {
	Consults map[string]int `json:"consults"`
	Total    int            `json:"total"`
}

// waitingStream serves GET /api/waiting: a server-sent event stream of
// the waiting counts of the signed-in clinician's consults, sent at once
// and on every change, so that any staff page can alert the clinician.
func (s *Site) waitingStream(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if s.opt.Lobbies == nil {
		http.NotFound(w, r)
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)

	owned := map[string]bool{} // consult id -> owned by this clinician
	var last *waitingEvent
	poll := time.NewTicker(waitingPoll)
	defer poll.Stop()
	end := time.NewTimer(waitingStreamLife)
	defer end.Stop()
	lastWrite := time.Now()
	for {
		ev := s.waitingFor(r, id.User.ID, owned)
		var frame string
		switch {
		case last == nil || !maps.Equal(ev.Consults, last.Consults):
			b, _ := json.Marshal(ev)
			frame = fmt.Sprintf("event: waiting\ndata: %s\n\n", b)
			last = &ev
		case time.Since(lastWrite) >= waitingHeartbeat:
			frame = ": keep-alive\n\n"
		}
		if frame != "" {
			_ = rc.SetWriteDeadline(time.Now().Add(waitingWrite))
			if _, err := w.Write([]byte(frame)); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			lastWrite = time.Now()
		}
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return
		case <-poll.C:
		}
	}
}

// waitingFor keeps the counts of the consults clinician owns, looking up
// the owner of each consult once per stream.
func (s *Site) waitingFor(r *http.Request, clinician string, owned map[string]bool) waitingEvent {
	ev := waitingEvent{Consults: map[string]int{}}
	for consultID, n := range s.opt.Lobbies.Waiting() {
		mine, known := owned[consultID]
		if !known {
			_, err := s.opt.Consults.View(r.Context(), clinician, consultID)
			switch {
			case err == nil:
				mine = true
			case errors.Is(err, store.ErrNotFound) || errors.Is(err, consult.ErrNotOwner):
			default:
				// Not remembered: asked again on the next poll.
				s.opt.Log.Error("waiting counts: consult owner", "consult", consultID, "err", err)
				continue
			}
			owned[consultID] = mine
		}
		if mine {
			ev.Consults[consultID] = n
			ev.Total += n
		}
	}
	return ev
}
