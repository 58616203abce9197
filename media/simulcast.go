package media

import (
	"time"
)

// Simulcast layer allocation. Each subscriber receives one layer of each
// simulcast video it is sent: the smallest that fills the size its browser
// shows the video at (Participant.View), lowered while its bandwidth
// estimate cannot carry what it is sent. The writer switches at the target
// layer's next keyframe (see downTrack.write).
//
// pion's GCC estimate never rises above 1.5 times what is actually sent,
// so once a subscriber is on a lower layer the estimate cannot show room
// for a higher one. Instead the allocator treats the estimate as a
// congestion signal: below what is sent means congested, step one track
// down; comfortably above it for a while means the path is not congested,
// so try one step up, and fall back if the estimate then drops.

const (
	allocTick = 500 * time.Millisecond
	// stepDownEvery limits how fast layers go down, so the estimate can
	// react to the previous step first.
	stepDownEvery = time.Second
	// probeAfter is how long after a step down the allocator waits before
	// trying a higher layer again.
	probeAfter = 5 * time.Second
	// congested and uncongested are estimate-to-send-rate ratios.
	congested   = 0.9
	uncongested = 1.25
)

// layerForView maps a display size in CSS pixels to a layer, assuming the
// usual simulcast ladder of a quarter, a half and the full camera
// resolution of a 1280x720 camera. A hidden video (0x0) is paused instead
// (downTrack.setPaused); it keeps the lowest layer as its target, which
// is the quickest keyframe to resume at.
func layerForView(w, h int) int {
	width := max(w, h*16/9)
	switch {
	case width <= 320:
		return 0
	case width <= 640:
		return 1
	}
	return maxLayers - 1
}

// allocState is a session's allocator memory between ticks; it belongs to
// the node's allocator goroutine.
type allocState struct {
	cap      map[*downTrack]int // highest layer bandwidth allows
	lastDown time.Time
	lastUp   time.Time
}

// allocLoop allocates the layers of every session of the node, each
// every allocTick and at once when woken: one goroutine for the node, not
// one per participant. It runs until the node closes.
func (s *SFU) allocLoop() {
	t := time.NewTicker(allocTick)
	defer t.Stop()
	var all []*Session
	for {
		select {
		case <-s.allocStop:
			return
		case sess := <-s.allocWake:
			sess.woken.Store(false)
			sess.allocate(&sess.alloc, time.Now())
			continue
		case <-t.C:
		}
		all = all[:0]
		s.mu.Lock()
		for _, r := range s.rooms {
			for _, sess := range r.sessions {
				all = append(all, sess)
			}
		}
		s.mu.Unlock()
		now := time.Now()
		for _, sess := range all {
			sess.allocate(&sess.alloc, now)
		}
		clear(all) // no session kept alive until the next tick
	}
}

// wake asks the allocator to run for this session now, after a view
// change or a new layer; the next tick does if the node's queue of
// sessions to wake is full.
func (s *Session) wake() {
	if !s.woken.CompareAndSwap(false, true) {
		return // already queued
	}
	select {
	case s.sfu.allocWake <- s:
	default:
		s.woken.Store(false)
	}
}

type allocItem struct {
	d    *downTrack
	want int
}

// allocate sets the target layer of every simulcast track of the session.
func (s *Session) allocate(st *allocState, now time.Time) {
	s.sfu.mu.Lock()
	items := make([]allocItem, 0, len(s.downs))
	// What the subscriber is sent besides simulcast video (audio, screen
	// shares) shares its path and counts against the estimate.
	var fixed int64
	for _, d := range s.downs {
		if d.paused.Load() {
			continue // sends nothing, costs nothing
		}
		if !d.pub.simulcast {
			if l := d.pub.layers[0].Load(); l != nil {
				fixed += l.rate.Load()
			}
			continue
		}
		want := maxLayers - 1
		if v, ok := s.views[d.pub.owner.member]; ok {
			want = layerForView(v[0], v[1])
		}
		items = append(items, allocItem{d, want})
	}
	for d := range st.cap {
		if s.downs[d.pub.key] != d {
			delete(st.cap, d) // unsubscribed
		}
	}
	s.sfu.mu.Unlock()

	// What is sent now, against what the subscriber's path carries.
	est := s.estimate()
	clock := s.sfu.now()
	sending := fixed
	for _, it := range items {
		if l := it.d.pub.layers[max(it.d.current.Load(), 0)].Load(); l != nil {
			sending += l.rate.Load()
		}
	}
	if est > 0 && sending > 0 {
		ratio := float64(est) / float64(sending)
		switch {
		case ratio < congested && now.Sub(st.lastDown) >= stepDownEvery:
			// Lower the track that costs most.
			var worst *downTrack
			var worstRate int64 = -1
			for _, it := range items {
				cur := int(it.d.current.Load())
				if cur <= 0 {
					continue
				}
				if l := it.d.pub.layers[cur].Load(); l != nil && l.rate.Load() > worstRate {
					worst, worstRate = it.d, l.rate.Load()
				}
			}
			if worst != nil {
				st.cap[worst] = int(worst.current.Load()) - 1
				st.lastDown = now
			}
		case ratio >= uncongested && now.Sub(st.lastDown) >= probeAfter && now.Sub(st.lastUp) >= probeAfter:
			for _, it := range items {
				if c, ok := st.cap[it.d]; ok && c < it.want {
					st.cap[it.d] = c + 1
					st.lastUp = now
					break
				}
			}
		}
	} else if est == 0 {
		clear(st.cap)
	}

	for _, it := range items {
		want := it.want
		if c, ok := st.cap[it.d]; ok && c < want {
			want = c
		}
		target := it.d.pub.bestLayer(want, clock)
		if target < 0 {
			continue
		}
		if old := it.d.target.Swap(int32(target)); int(old) != target {
			s.sfu.log.Debug("sfu layer target", "room", s.room.id, "member", s.member, "publisher", it.d.pub.owner.member,
				"from", old, "to", target, "want", it.want, "estimate", est, "sending", sending)
			switch cur := it.d.current.Load(); {
			case cur < 0: // nothing shown yet
				it.d.pub.requestFirstKeyframe(target)
			case int32(target) != cur:
				it.d.pub.requestKeyframe(target)
			}
		}
	}
}

// bestLayer returns the highest active layer at or below want, else the
// lowest active layer, else -1 when no layer is being received.
func (pub *publication) bestLayer(want int, now int64) int {
	for i := min(want, maxLayers-1); i >= 0; i-- {
		if pub.layers[i].Load().active(now) {
			return i
		}
	}
	for i := want + 1; i < maxLayers; i++ {
		if pub.layers[i].Load().active(now) {
			return i
		}
	}
	return -1
}

// estimate is the subscriber's available bandwidth in bits per second, 0
// when unknown.
func (s *Session) estimate() int {
	if f := s.estimateOverride.Load(); f != nil {
		return (*f)()
	}
	if s.bwe == nil {
		return 0
	}
	return s.bwe.GetTargetBitrate()
}
