package media

import (
	"math"
	"sync/atomic"
	"time"
)

// Active speaker detection. Browsers put each audio packet's level in the
// RFC 6464 header extension (0 is the loudest, 127 silence, in -dBov), so
// the SFU finds the speaker without decoding audio. Levels are averaged
// per tick, smoothed over about a second, and the speaker changes only
// when someone else is clearly louder for a while, so that a cough or two
// people talking over each other does not make the layout flap.

const (
	speakerTick = 200 * time.Millisecond
	// speakerAlpha smooths with a time constant of one second.
	speakerAlpha = 0.18
	// speakingLoudness is the smoothed loudness (127 - level) above which a
	// member counts as speaking: speech is typically at -20 to -50 dBov
	// (loudness 77 to 107, less the pauses between words), the background
	// noise of a quiet room below -70 dBov (loudness under 57).
	speakingLoudness = 60
	// speakerMargin is how much louder someone must be than the current
	// speaker, and speakerHold for how many ticks, to take over.
	speakerMargin = 6
	speakerHold   = 3
	// silentTicks without anyone speaking clear the speaker.
	silentTicks = 8
)

// levelMeter collects one audio track's levels between ticks, from its
// reader goroutine, without locks.
type levelMeter struct {
	sum   atomic.Int64
	count atomic.Int64
}

func (m *levelMeter) add(ext []byte) {
	if len(ext) < 1 {
		return
	}
	m.sum.Add(127 - int64(ext[0]&0x7f))
	m.count.Add(1)
}

// take returns the mean loudness since the last take, 0 without packets
// (a muted track sends none).
func (m *levelMeter) take() float64 {
	n := m.count.Swap(0)
	s := m.sum.Swap(0)
	if n == 0 {
		return 0
	}
	return float64(s) / float64(n)
}

// speakerDetector is the per-room state machine, fed once per tick with
// each member's mean loudness; it has no clock of its own, so tests drive
// it tick by tick.
type speakerDetector struct {
	smooth     map[string]float64
	current    string
	challenger string
	held       int
	silent     int
}

func newSpeakerDetector() *speakerDetector {
	return &speakerDetector{smooth: map[string]float64{}}
}

// tick takes the loudness of every member with audio and returns the
// speaker and whether it changed.
func (d *speakerDetector) tick(loudness map[string]float64) (string, bool) {
	for m := range d.smooth {
		if _, ok := loudness[m]; !ok {
			delete(d.smooth, m) // left, or stopped publishing audio
		}
	}
	best, bestLevel := "", math.Inf(-1)
	for m, l := range loudness {
		s := d.smooth[m] + speakerAlpha*(l-d.smooth[m])
		d.smooth[m] = s
		if s > bestLevel || (s == bestLevel && m < best) {
			best, bestLevel = m, s
		}
	}
	prev := d.current
	if bestLevel < speakingLoudness {
		d.challenger, d.held = "", 0
		if d.silent++; d.silent >= silentTicks {
			d.current = ""
		}
		return d.current, d.current != prev
	}
	d.silent = 0
	cur, curOK := d.smooth[d.current]
	switch {
	case best == d.current:
		d.challenger, d.held = "", 0
	case d.current == "" || !curOK || cur < speakingLoudness:
		d.current, d.challenger, d.held = best, "", 0
	case bestLevel > cur+speakerMargin:
		if d.challenger != best {
			d.challenger, d.held = best, 0
		}
		if d.held++; d.held >= speakerHold {
			d.current, d.challenger, d.held = best, "", 0
		}
	default:
		d.challenger, d.held = "", 0
	}
	return d.current, d.current != prev
}

// speakerLoop finds the active speaker of every room of the node, every
// speakerTick, and tells the room's members when it changes: one
// goroutine for the node, not one per room. Events implementations only
// queue what they are given, so a slow member delays no other room. It
// runs until the node closes.
func (s *SFU) speakerLoop() {
	t := time.NewTicker(speakerTick)
	defer t.Stop()
	var rooms []*room
	loud := map[string]float64{}
	for {
		select {
		case <-s.allocStop:
			return
		case <-t.C:
		}
		rooms = rooms[:0]
		s.mu.Lock()
		for _, r := range s.rooms {
			rooms = append(rooms, r)
		}
		s.mu.Unlock()
		for _, r := range rooms {
			s.speakerTick(r, loud)
		}
		clear(rooms) // no room kept alive until the next tick
	}
}

// speakerTick takes one tick of r's levels; loud is the caller's scratch
// map.
func (s *SFU) speakerTick(r *room, loud map[string]float64) {
	clear(loud)
	s.mu.Lock()
	for _, pub := range r.pubs {
		if pub.kind == kindAudio && pub.audioLevelID != 0 {
			if l := pub.level.take(); l > loud[pub.owner.member] {
				loud[pub.owner.member] = l
			} else if _, ok := loud[pub.owner.member]; !ok {
				loud[pub.owner.member] = l
			}
		}
	}
	s.mu.Unlock()
	speaker, changed := r.det.tick(loud)
	if !changed {
		return
	}
	s.metrics.speakerChanges.Inc()
	s.mu.Lock()
	r.speaker = speaker
	outs := make([]Events, 0, len(r.sessions))
	for _, sess := range r.sessions {
		outs = append(outs, sess.out)
	}
	s.mu.Unlock()
	for _, out := range outs {
		out.Speaker(speaker)
	}
}
