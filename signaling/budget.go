package signaling

import (
	"encoding/json"
	"time"
)

// readEnvelope reads a message's type and id, or says why it cannot: too
// large (beyond MaxMessageBytes only an offer or answer is taken, up to
// MaxSDPMessageBytes), or not a JSON object with a string type. The
// envelope carries the message's size either way.
func readEnvelope(raw []byte) (envelope, *ProtoError) {
	env := envelope{size: len(raw)}
	if len(raw) > MaxSDPMessageBytes {
		return env, ErrTooLarge
	}
	if json.Unmarshal(raw, &env) != nil || env.Type == "" {
		return envelope{size: len(raw)}, ErrMalformed
	}
	if len(raw) > MaxMessageBytes && env.Type != "offer" && env.Type != "answer" {
		return envelope{size: len(raw), ID: env.ID}, ErrTooLarge
	}
	return env, nil
}

// sdpFits reports whether sdp takes at most MaxSDPBytes as JSON encodes
// it on its way to a member or a media node: CR and LF take two bytes
// there, '<', '>', '&', control characters and each byte of invalid
// UTF-8 six, so a description dense in them cannot grow past the limit
// of the link to a remote node.
func sdpFits(sdp string) bool {
	if len(sdp) > MaxSDPBytes {
		return false
	}
	b, err := json.Marshal(sdp)
	return err == nil && len(b) <= MaxSDPBytes
}

// messageCost is what a message of size bytes takes from the rate
// budget: a token for each MaxMessageBytes it starts, so the bytes a
// member may send in a burst or a second stay what they were when no
// message could exceed MaxMessageBytes, whatever offers it sends.
func messageCost(size int) int {
	return 1 + max(size-1, 0)/MaxMessageBytes
}

// admitMessage reports whether a message from m is to be answered: m is
// still in the room and within its rate budget. Every message counts
// against the budget whatever becomes of it (too large, not JSON, of an
// unknown type, needing a right m lacks), so a flood of refused messages
// is limited like a flood of valid ones; a large one costs more
// (messageCost). Beyond the budget m is told rate-limited. r.mu must be
// held.
func (r *Room) admitMessage(m *Member, env envelope) bool {
	if r.members[m.ID] != m || r.ended {
		return false // removed or ended while the message was in flight
	}
	if !m.limiter.AllowN(time.Now(), messageCost(env.size)) {
		m.sendError(env.ID, ErrRateLimited)
		return false
	}
	return true
}

// refuse answers a frame of size bytes that the dispatcher cannot read at
// all, such as a binary one or a large one the process had no room for,
// with e; it counts against m's budget like any message of its size.
func (r *Room) refuse(m *Member, size int, e *ProtoError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.admitMessage(m, envelope{size: size}) {
		m.sendError("", e)
	}
}
