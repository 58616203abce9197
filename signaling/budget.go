package signaling

import "encoding/json"

// readEnvelope reads a message's type and id, or says why it cannot: too
// large, or not a JSON object with a string type.
func readEnvelope(raw []byte) (envelope, *ProtoError) {
	var env envelope
	if len(raw) > MaxMessageBytes {
		return envelope{}, ErrTooLarge
	}
	if json.Unmarshal(raw, &env) != nil || env.Type == "" {
		return envelope{}, ErrMalformed
	}
	return env, nil
}

// admitMessage reports whether a message from m is to be answered: m is
// still in the room and within its rate budget. Every message counts
// against the budget whatever becomes of it (too large, not JSON, of an
// unknown type, needing a right m lacks), so a flood of refused messages
// is limited like a flood of valid ones. Beyond the budget m is told
// rate-limited. r.mu must be held.
func (r *Room) admitMessage(m *Member, ref string) bool {
	if r.members[m.ID] != m || r.ended {
		return false // removed or ended while the message was in flight
	}
	if !m.limiter.Allow() {
		m.sendError(ref, ErrRateLimited)
		return false
	}
	return true
}

// refuse answers a frame the dispatcher cannot read at all, such as a
// binary one, with e; it counts against m's budget like any message.
func (r *Room) refuse(m *Member, e *ProtoError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.admitMessage(m, "") {
		m.sendError("", e)
	}
}
