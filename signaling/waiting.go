package signaling

// waitingMsg tells a member in the lobby whether a clinician of the consult
// is connected, so the waiting room says "has been told" only when true.
type waitingMsg struct {
	Type      string `json:"type"` // "waiting"
	Clinician bool   `json:"clinician"`
}

// Waiting returns, for each live consult on this server with someone in
// its lobby, how many are waiting. It carries counts only: names stay in
// the room.
func (h *Hub) Waiting() map[string]int {
	h.mu.Lock()
	rooms := make([]*Room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.Unlock()
	out := map[string]int{}
	for _, r := range rooms {
		r.mu.Lock()
		n := 0
		for _, m := range r.members {
			if !m.admitted {
				n++
			}
		}
		r.mu.Unlock()
		if n > 0 {
			out[r.ID] = n
		}
	}
	return out
}

// clinicianConnectedLocked reports whether an admitted host of the room
// has a live connection.
func (r *Room) clinicianConnectedLocked() bool {
	for _, m := range r.members {
		if m.admitted && m.rights&RightHost != 0 && m.conn != nil {
			return true
		}
	}
	return false
}

// tellLobbyLocked tells every member in the lobby whether a clinician is
// connected.
func (r *Room) tellLobbyLocked() {
	msg := encode(waitingMsg{Type: "waiting", Clinician: r.clinicianConnectedLocked()})
	for _, m := range r.members {
		if !m.admitted {
			m.send(msg)
		}
	}
}
