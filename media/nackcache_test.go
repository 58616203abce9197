package media

import (
	"testing"
	"time"
)

// TestSentLogLetsGoOfPacketsOlderThanItsAge: a subscriber's NACK log
// holds a second of packets, not its 256 slots' worth, so a slow layer's
// packets go back to the pool once they are too old to be asked for.
func TestSentLogLetsGoOfPacketsOlderThanItsAge(t *testing.T) {
	pool := newPacketPool()
	var l sentLog
	at := int64(0)
	add := func(seq uint16) {
		p := pool.get()
		p.arrival = at
		l.add(pool, p, sentEntry{seq: seq})
		pool.release(p) // the reader's reference; the log keeps its own
	}
	// 30 packets a second for two seconds, sequence numbers wrapping.
	for i := range 60 {
		at = int64(i) * int64(time.Second) / 30
		add(uint16(65520 + i))
	}
	held := l.held()
	if held < 29 || held > 31 {
		t.Fatalf("the log holds %d of 60 packets sent over 2 s, want a second's worth (30)", held)
	}
	if _, ok := l.get(65520 + 10); ok {
		t.Errorf("a packet sent 1.6 s ago is still answered")
	}
	e, ok := l.get(59 - 16)
	if !ok {
		t.Fatalf("the newest packet is not answered")
	}
	pool.release(e.p)
	l.clear(pool)
	if n := l.held(); n != 0 {
		t.Fatalf("the log holds %d packets after clear", n)
	}
}

// held counts the packets the log holds.
func (l *sentLog) held() int {
	n := 0
	for _, e := range l.e {
		if e.p != nil {
			n++
		}
	}
	return n
}

// TestSentLogKeepsAFastLayersLast256: at a high rate the slots, not the
// age, bound the log.
func TestSentLogKeepsAFastLayersLast256(t *testing.T) {
	pool := newPacketPool()
	var l sentLog
	for i := range 1000 {
		p := pool.get()
		p.arrival = int64(i) * int64(time.Millisecond) // 1,000 packets a second
		l.add(pool, p, sentEntry{seq: uint16(i)})
		pool.release(p)
	}
	if n := l.held(); n != sentHistory {
		t.Errorf("the log holds %d packets, want %d", n, sentHistory)
	}
	for _, c := range []struct {
		seq  uint16
		want bool
	}{{999, true}, {1000 - sentHistory, true}, {999 - sentHistory, false}, {10, false}} {
		e, ok := l.get(c.seq)
		if ok {
			pool.release(e.p)
		}
		if ok != c.want {
			t.Errorf("packet %d answered: %v, want %v", c.seq, ok, c.want)
		}
	}
}
