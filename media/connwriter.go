package media

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// writeBurst is how many packets the connection writer takes from one
// track's queue before it turns to the next: a keyframe burst of video
// does not hold audio back for long.
const writeBurst = 16

// connWriter is the one writer goroutine of a subscriber's connection:
// it writes what every track forwarded to the subscriber queued, each
// track keeping its own queue, so a track's overflow drops that track's
// packets only, and a subscriber whose transport stalls stalls its own
// writer, nobody else's. Publishers' readers queue and wake it, never
// blocking.
//
// On the shared UDP port, the writer holds its subscriber's address while
// it writes what it has ready, so that the burst (a video frame's
// packets, and what its other tracks queued) leaves in one sendmmsg
// (udpburst_linux.go) rather than one sendto per packet.
type connWriter struct {
	sfu  *SFU
	wake chan struct{} // one pending wake-up at most

	ice *webrtc.ICETransport // nil when there is no burst to hold
	// own is the UDP address of the connection on the node's own
	// transport, if it has one: the writer holds bursts for it, and
	// packets may be written to it directly (downTrack.writeDirect). Nil
	// on pion's.
	own func() (netip.AddrPort, bool)
	// burst is set when the node's sockets hold bursts.
	burst bool
	// remote is the selected candidate pair's remote address, kept
	// current by pion's callback: nil before the first pair, invalid when
	// the pair is not one of UDP to an IP address.
	remote atomic.Pointer[netip.AddrPort]
	heldOn []burstHolder  // writer-owned: the sockets that hold the current burst
	heldTo netip.AddrPort // writer-owned: the address they hold, as the pair may change meanwhile

	mu    sync.Mutex
	downs []*downTrack // the connection's tracks; stopped ones leave on the writer's next pass
}

// newConnWriter makes the writer of pc's tracks.
func newConnWriter(sfu *SFU, pc *webrtc.PeerConnection) *connWriter {
	w := &connWriter{sfu: sfu, wake: make(chan struct{}, 1)}
	if len(sfu.sockets.list) > 0 && pc != nil {
		w.ice = pc.SCTP().Transport().ICETransport()
		w.ice.OnSelectedCandidatePairChange(func(p *webrtc.ICECandidatePair) {
			a := pairRemote(p)
			w.remote.Store(&a)
		})
	}
	return w
}

// pairRemote is the address the node writes a candidate pair's datagrams
// to, when that is one of UDP from the node's own sockets; else the zero
// AddrPort. An mDNS name is the zero AddrPort too, and the connection's
// datagrams are written one by one.
func pairRemote(p *webrtc.ICECandidatePair) netip.AddrPort {
	if p == nil || p.Local == nil || p.Remote == nil || p.Remote.Protocol != webrtc.ICEProtocolUDP || p.Local.Typ == webrtc.ICECandidateTypeRelay {
		return netip.AddrPort{}
	}
	a, err := netip.ParseAddr(p.Remote.Address)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, p.Remote.Port)
}

// follows has the writer write to the UDP address the participant's
// checks selected, which remote returns, directly where it can and in
// bursts where the node's sockets hold them.
func (w *connWriter) follows(remote func() (netip.AddrPort, bool)) {
	w.own = remote
	w.burst = len(w.sfu.sockets.list) > 0
}

// follow reads the pair selected before the callback was set, unless the
// callback has already told one. A pair is selected once the transport is
// connected; before, pion's GetSelectedCandidatePair races with its Start.
func (w *connWriter) follow() {
	if w.ice == nil || w.remote.Load() != nil {
		return
	}
	if st := w.ice.State(); st != webrtc.ICETransportStateConnected && st != webrtc.ICETransportStateCompleted {
		return
	}
	p, err := w.ice.GetSelectedCandidatePair()
	if err != nil || p == nil {
		return
	}
	a := pairRemote(p)
	w.remote.CompareAndSwap(nil, &a)
}

// add has the writer write d's queue.
func (w *connWriter) add(d *downTrack) {
	w.mu.Lock()
	w.downs = append(w.downs, d)
	w.mu.Unlock()
}

// signal wakes the writer; it never blocks.
func (w *connWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes until done is closed, then lets go of every track's queue.
func (w *connWriter) run(done <-chan struct{}) {
	var downs []*downTrack
	for {
		select {
		case <-w.wake:
		case <-done:
			w.mu.Lock()
			downs = append(downs[:0], w.downs...)
			w.downs = nil
			w.mu.Unlock()
			for _, d := range downs {
				d.release()
			}
			return
		}
		downs = w.writeReady(downs)
	}
}

// writeReady writes passes until every queue is empty.
func (w *connWriter) writeReady(downs []*downTrack) []*downTrack {
	for {
		w.mu.Lock()
		downs = append(downs[:0], w.downs...)
		w.mu.Unlock()
		if !w.heldPass(downs) {
			return downs
		}
	}
}

// heldPass writes one pass as one burst: what was ready when it began.
// Holding across passes would keep the first packets back as long as new
// ones arrive while the writer writes.
func (w *connWriter) heldPass(downs []*downTrack) bool {
	w.hold()
	defer w.release()
	return w.pass(downs)
}

// hold has the shared sockets keep what is written to the subscriber.
func (w *connWriter) hold() {
	to, ok := w.holdAddr()
	if !ok {
		return
	}
	w.heldTo = to
	for _, h := range w.sfu.sockets.list {
		if h.hold(w.heldTo) {
			w.heldOn = append(w.heldOn, h)
		}
	}
}

// holdAddr is the subscriber's address, if it is one of UDP the node
// writes its datagrams to.
func (w *connWriter) holdAddr() (netip.AddrPort, bool) {
	if w.own != nil {
		if !w.burst {
			return netip.AddrPort{}, false
		}
		return w.own()
	}
	if w.ice == nil {
		return netip.AddrPort{}, false
	}
	w.follow()
	to := w.remote.Load()
	if to == nil || !to.IsValid() {
		return netip.AddrPort{}, false
	}
	return *to, true
}

// release sends what the sockets kept, each in one system call.
func (w *connWriter) release() {
	if len(w.heldOn) == 0 {
		return
	}
	for i, h := range w.heldOn {
		h.release(w.heldTo)
		w.heldOn[i] = nil
	}
	w.heldOn = w.heldOn[:0]
}

// pass writes up to writeBurst packets of each track, reporting whether
// it wrote any; a stopped track is released and taken off the list.
func (w *connWriter) pass(downs []*downTrack) bool {
	busy := false
	for _, d := range downs {
		select {
		case <-d.done:
			w.remove(d)
			d.release()
			continue
		default:
		}
		for range writeBurst {
			select {
			case q := <-d.queue:
				d.wmu.Lock()
				d.write(q.p, q.resume)
				d.wmu.Unlock()
				w.sfu.pool.release(q.p)
				busy = true
				continue
			default:
			}
			break
		}
	}
	return busy
}

func (w *connWriter) remove(d *downTrack) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, o := range w.downs {
		if o == d {
			w.downs = append(w.downs[:i], w.downs[i+1:]...)
			return
		}
	}
}
