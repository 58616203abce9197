package recording

import "time"

// packet is one RTP packet of a recorded track, copied off the node's
// goroutine.
type packet struct {
	seq     uint16
	ts      uint32
	marker  bool
	payload []byte
	at      time.Duration // arrival, since the recording started
}

// jitterSlots bounds how far ahead of the next expected packet one may
// arrive; a packet further ahead resets the buffer (a gap).
const jitterSlots = 256

// jitter puts a track's packets back in sequence order. It holds up to
// depth packets waiting for a missing one; when more arrive the missing
// one is taken as lost. Late and duplicate packets are dropped.
type jitter struct {
	depth   int
	slots   [jitterSlots]*packet
	next    uint16 // sequence number of the next packet out
	held    int
	started bool
}

// push adds p and passes every packet now in order to out; lost is
// called where a gap is skipped.
func (j *jitter) push(p *packet, out func(*packet), lost func()) {
	if !j.started {
		j.started, j.next = true, p.seq
	}
	ahead := p.seq - j.next
	switch {
	case int16(ahead) < 0:
		return // late, or a duplicate of one passed on
	case int(ahead) >= jitterSlots:
		j.flush(out, lost)
		lost()
		j.next = p.seq
		ahead = 0
	}
	slot := &j.slots[p.seq%jitterSlots]
	if *slot != nil {
		return // duplicate
	}
	*slot, j.held = p, j.held+1
	j.drain(out)
	for j.held > j.depth {
		j.skip(lost)
		j.drain(out)
	}
}

// drain passes on the packets in order from next.
func (j *jitter) drain(out func(*packet)) {
	for {
		slot := &j.slots[j.next%jitterSlots]
		if *slot == nil {
			return
		}
		p := *slot
		*slot, j.held = nil, j.held-1
		j.next++
		out(p)
	}
}

// skip moves next past a gap to the first held packet.
func (j *jitter) skip(lost func()) {
	for j.slots[j.next%jitterSlots] == nil {
		j.next++
	}
	lost()
}

// flush passes on everything held, in order, skipping gaps.
func (j *jitter) flush(out func(*packet), lost func()) {
	for j.held > 0 {
		if j.slots[j.next%jitterSlots] == nil {
			j.skip(lost)
		}
		j.drain(out)
	}
}
