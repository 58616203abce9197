package media

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestThrottledKeyframeRequestGoesOutWhenTheIntervalEnds: a subscriber
// that asks for a keyframe just after another's request (whose keyframe
// has already gone by) gets one when the throttle interval ends, not at
// its own next retry; a keyframe that comes first serves the request.
func TestThrottledKeyframeRequestGoesOutWhenTheIntervalEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, kindVideo)
		l := h.pub.layers[0].Load()
		h.pub.requestKeyframe(0) // the first subscriber's
		h.pub.requestKeyframe(0) // the second's, within the interval
		if got := h.plis.Load(); got != 1 {
			t.Fatalf("%d keyframe requests sent at once, want 1 (the second throttled)", got)
		}
		// Delta frames every 20 ms: the request waits for the interval.
		sent := time.Duration(0)
		for elapsed := time.Duration(0); elapsed < time.Second && sent == 0; elapsed += 20 * time.Millisecond {
			time.Sleep(20 * time.Millisecond)
			p := h.packet()
			p.keyframe = false
			h.pub.servePending(l, 0, p)
			h.sfu.pool.release(p)
			if h.plis.Load() == 2 {
				sent = elapsed + 20*time.Millisecond
			}
		}
		if sent < time.Duration(keyframeInterval) || sent > time.Duration(keyframeInterval)+20*time.Millisecond {
			t.Fatalf("the throttled request went out after %v, want at the end of the %v interval", sent, time.Duration(keyframeInterval))
		}

		// A request throttled again, then a keyframe: nothing more is sent.
		h.pub.requestKeyframe(0)
		time.Sleep(20 * time.Millisecond)
		p := h.packet()
		p.keyframe = true
		h.pub.servePending(l, 0, p)
		h.sfu.pool.release(p)
		time.Sleep(time.Duration(keyframeInterval))
		p = h.packet()
		p.keyframe = false
		h.pub.servePending(l, 0, p)
		h.sfu.pool.release(p)
		if got := h.plis.Load(); got != 2 {
			t.Fatalf("%d keyframe requests, want 2: the keyframe served the third", got)
		}
	})
}
