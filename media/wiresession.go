package media

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media/sdpneg"
	"github.com/openconsult/openconsult/media/wire"
)

// wireSession is a session's connection on the node's own transport
// (Config.OwnTransport), and what the session keeps to route its
// streams: what pion's PeerConnection, its transceivers and its track
// readers do for a session on pion.
//
// Its streams need no goroutine: a received packet is read up the chain
// and forwarded on the goroutine that received and decrypted it, and a
// subscriber's RTCP is acted on there too.
type wireSession struct {
	conn *wireConn

	mu  sync.RWMutex
	in  map[uint32]wireLayer  // received media streams, by SSRC
	out map[uint32]*downTrack // tracks sent and bound, by the node's SSRC
	rs  resender              // the delivering goroutine's, for NACK answers

	// offered are the node's tracks in the negotiation, by track id;
	// the session's negMu guards it.
	offered map[string]*downTrack
	// next numbers the node's track ids; sfu.mu guards it.
	next int
}

// wireLayer is one received stream: a layer of a publication.
type wireLayer struct {
	mid, rid string
	pub      *publication
	idx      int
	l        *layer
	onRTP    func([]byte, interceptor.Attributes)
}

// openWire makes the session's connection on the node's own transport,
// with an interceptor chain of its own; the caller holds sfu.mu.
func (s *Session) openWire() error {
	sfu := s.sfu
	id := "wire-" + crand.Text()
	chain, err := sfu.api.reg.Build(id)
	if err != nil {
		return fmt.Errorf("interceptors: %w", err)
	}
	if e, ok := sfu.estimators.LoadAndDelete(id); ok {
		s.bwe = e.(*leanBWE)
	}
	if r, ok := sfu.retransmitters.LoadAndDelete(id); ok {
		s.rtx = r.(*retransmitter)
	}
	ws := &wireSession{in: map[uint32]wireLayer{}, out: map[uint32]*downTrack{}, offered: map[string]*downTrack{}}
	ws.conn, err = newWireConn(wireConnConfig{Port: sfu.wire.port, Certificate: sfu.wire.cert, Candidates: sfu.wire.candidates,
		Chain: chain, OnStream: s.onWireStream, OnStreamEnded: s.onWireStreamEnded, OnFeedback: s.onWireFeedback,
		OnState: s.onWireState})
	if err != nil {
		_ = chain.Close()
		return fmt.Errorf("own transport: %w", err)
	}
	s.wc = ws
	return nil
}

// offerWire answers the participant's offer; the first one places the
// room's publications on the sections the participant only receives on,
// as subscribeRoom does on pion.
func (s *Session) offerWire(offer string) error {
	s.negMu.Lock()
	defer s.negMu.Unlock()
	var placed []*downTrack
	answer, dropped, err := s.wc.conn.applyOffer(offer, func(secs []sdpneg.Section) map[string]sdpneg.Track {
		var tracks map[string]sdpneg.Track
		tracks, placed = s.subscribeRoomWire(secs)
		return tracks
	})
	if err != nil {
		if len(placed) > 0 {
			s.markPending() // offered with the node's next offer instead
		}
		return fmt.Errorf("remote offer: %w", err)
	}
	for _, d := range placed {
		s.wc.offered[d.desc.ID] = d
	}
	s.renewDropped(dropped)
	s.bindWire()
	s.out.Answer(answer)
	s.sfu.goOwned(s.negotiate) // tracks added before the first offer
	return nil
}

// subscribeRoomWire subscribes the session to the room's publications
// with its first offer, and returns those placed on the offer's
// receive-only sections, by mid; the rest wait for the node's offer.
func (s *Session) subscribeRoomWire(secs []sdpneg.Section) (map[string]sdpneg.Track, []*downTrack) {
	s.sfu.mu.Lock()
	defer s.sfu.mu.Unlock()
	if s.subscribed || s.closed {
		return nil, nil
	}
	s.subscribed = true
	s.youngUntil = s.sfu.now() + int64(memberYoung)
	var free []sdpneg.Section
	for _, sec := range secs {
		if sec.MemberReceives && !sec.MemberSends && !sec.Stopped && sec.Track == nil {
			free = append(free, sec)
		}
	}
	tracks := map[string]sdpneg.Track{}
	var placed []*downTrack
	for _, pub := range s.room.pubs {
		if pub.owner.member == s.member {
			continue
		}
		kind, codec := wireKind(pub.kind), wireCodec(pub.codec)
		i := -1
		for j, sec := range free {
			if _, ok := carrier(sec, codec); ok && sec.Kind == kind {
				i = j
				break
			}
		}
		if !s.subscribeLocked(pub, i >= 0) || i < 0 {
			continue
		}
		if d := s.downs[pub.key]; d != nil {
			tracks[free[i].Mid] = d.desc
			placed = append(placed, d)
			free = append(free[:i], free[i+1:]...)
		}
	}
	return tracks, placed
}

func wireKind(kind int) sdpneg.Kind {
	if kind == kindAudio {
		return sdpneg.Audio
	}
	return sdpneg.Video
}

// wireCodec is a publication's codec as the node negotiates it.
func wireCodec(c webrtc.RTPCodecParameters) sdpneg.Codec {
	_, name, _ := strings.Cut(c.MimeType, "/")
	return sdpneg.Codec{Name: name, ClockRate: c.ClockRate, Channels: c.Channels, Fmtp: c.SDPFmtpLine}
}

// newTrack is how the node sends pub to the session: an id unique in its
// negotiation, the publisher's stream, and SSRCs of its own; the caller
// holds sfu.mu.
func (ws *wireSession) newTrack(pub *publication) sdpneg.Track {
	ws.next++
	t := sdpneg.Track{ID: "t" + strconv.Itoa(ws.next), StreamID: pub.streamID, Kind: wireKind(pub.kind),
		SSRC: newSSRC(), CNAME: pub.streamID, Codec: wireCodec(pub.codec)}
	if pub.kind == kindVideo {
		t.RTXSSRC = newSSRC()
	}
	return t
}

func newSSRC() uint32 {
	for {
		if v := rand.Uint32(); v != 0 {
			return v
		}
	}
}

// renewDropped sends each track whose section the participant stopped
// again, on a section of its own with the node's next offer, as a track
// of new SSRCs: a receiver may still tie the old ones to the stopped
// section. The caller holds negMu.
func (s *Session) renewDropped(ids []string) {
	ws := s.wc
	for _, id := range ids {
		d := ws.offered[id]
		if d == nil {
			continue
		}
		s.forgetWireTrack(d)
		s.sfu.mu.Lock()
		if s.downs[d.pub.key] == d {
			d.desc = ws.newTrack(d.pub) // under negMu and sfu.mu, which its readers hold
		}
		s.sfu.mu.Unlock()
		s.markPending()
	}
}

// forgetWireTrack takes d's track out of the negotiation and stops
// writing it; the caller holds negMu.
func (s *Session) forgetWireTrack(d *downTrack) {
	ws := s.wc
	delete(ws.offered, d.desc.ID)
	d.bound.Store(nil)
	ws.mu.Lock()
	delete(ws.out, d.desc.SSRC)
	ws.mu.Unlock()
	if err := ws.conn.removeTrack(d.desc.ID, d.desc.SSRC); err != nil {
		s.sfu.log.Debug("sfu track removal", "member", s.member, "err", err)
	}
}

// answerWire applies the participant's answer to the node's offer.
func (s *Session) answerWire(answer string) error {
	s.negMu.Lock()
	err := s.wc.conn.applyAnswer(answer)
	if err == nil {
		s.bindWire() // a track the answer rejected is not offered again: it would be again
	}
	s.negMu.Unlock()
	if err != nil {
		return fmt.Errorf("remote answer: %w", err)
	}
	s.sfu.goOwned(s.negotiate) // changes that waited for this answer
	return nil
}

// negotiateWire sends the node's offer for the tracks the session should
// now receive, once the connection is stable; the caller holds negMu and
// found changes pending.
func (s *Session) negotiateWire() {
	if !s.wc.conn.stable() {
		return // before the first offer, or while one is outstanding
	}
	if d := s.holdFor(); d > 0 {
		s.negotiateAfter(d)
		return
	}
	s.pending.Store(false)
	s.syncWireTracks()
	offer, err := s.wc.conn.createOffer()
	if err != nil {
		s.sfu.log.Warn("sfu offer", "member", s.member, "err", err)
		return
	}
	if offer != "" {
		s.out.Offer(offer)
	}
}

// syncWireTracks brings the negotiation's tracks to the session's
// subscriptions: a track whose subscription ended is removed, a new
// subscription's track added; the caller holds negMu.
func (s *Session) syncWireTracks() {
	ws := s.wc
	s.sfu.mu.Lock()
	want := make(map[string]*downTrack, len(s.downs))
	for _, d := range s.downs {
		want[d.desc.ID] = d
	}
	s.sfu.mu.Unlock()
	for id, d := range ws.offered {
		if want[id] != d {
			s.forgetWireTrack(d)
		}
	}
	for id, d := range want {
		if _, ok := ws.offered[id]; ok {
			continue
		}
		if err := ws.conn.addTrack(d.desc, ""); err != nil {
			s.sfu.log.Warn("sfu subscribe", "member", s.member, "err", err)
			continue
		}
		ws.offered[id] = d
	}
}

// bindWire binds each track a negotiation just placed on a section, so
// its writer writes it, and asks its publisher for a keyframe; the
// caller holds negMu.
func (s *Session) bindWire() {
	ws := s.wc
	for _, d := range ws.offered {
		if d.bound.Load() != nil {
			continue
		}
		w, pt, err := ws.conn.bindTrack(d.desc.ID)
		if err != nil {
			continue // not on a negotiated section yet
		}
		ws.mu.Lock()
		ws.out[d.desc.SSRC] = d
		ws.mu.Unlock()
		d.bound.Store(&binding{ssrc: d.desc.SSRC, pt: pt, ws: chainWriter{w}})
		if d.kind == kindVideo {
			d.pub.requestFirstKeyframe(int(d.target.Load()))
		}
	}
}

// onWireStream publishes a stream the participant started sending, or
// adds it as a layer, and returns where its packets go; an RTX stream's
// repairs go where the stream they repair goes.
func (s *Session) onWireStream(st inStream) func([]byte, interceptor.Attributes) {
	ws := s.wc
	if st.RTX {
		ws.mu.RLock()
		defer ws.mu.RUnlock()
		for _, l := range ws.in {
			if l.mid == st.Mid && l.rid == st.RID {
				return l.onRTP
			}
		}
		return nil
	}
	pub, idx, l, ok := s.publish(s.wireTrack(st), st.SSRC)
	if !ok {
		return nil
	}
	pool := s.sfu.pool
	onRTP := func(b []byte, _ interceptor.Attributes) {
		if len(b) > maxPacket {
			return
		}
		p := pool.copyOf(b)
		pub.forward(p, idx, l)
		pool.release(p)
	}
	ws.mu.Lock()
	ws.in[st.SSRC] = wireLayer{mid: st.Mid, rid: st.RID, pub: pub, idx: idx, l: l, onRTP: onRTP}
	ws.mu.Unlock()
	return onRTP
}

// wireTrack describes a received stream for publish.
func (s *Session) wireTrack(st inStream) trackDesc {
	m := st.Section.Member
	d := trackDesc{id: m.TrackID, streamID: m.StreamID, rid: st.RID, kind: kindVideo,
		codec: webrtc.RTPCodecParameters{PayloadType: webrtc.PayloadType(st.Codec.PayloadType),
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: string(st.Section.Kind) + "/" + st.Codec.Name,
				ClockRate: st.Codec.ClockRate, Channels: st.Codec.Channels, SDPFmtpLine: st.Codec.Fmtp}},
		sendPLI: s.wc.conn.requestKeyframe}
	if d.id == "" || d.id == "-" {
		d.id = "mid-" + st.Mid // a section without a track id of its own
	}
	if d.streamID == "" || d.streamID == "-" {
		d.streamID = d.id
	}
	if st.Section.Kind == sdpneg.Audio {
		d.kind = kindAudio
		d.audioLevelID = uint8(st.Section.Extensions[sdpneg.URIAudioLevel])
	}
	return d
}

// onWireStreamEnded takes a stream the participant stopped sending off
// its publication.
func (s *Session) onWireStreamEnded(ssrc uint32) {
	ws := s.wc
	ws.mu.Lock()
	e, ok := ws.in[ssrc]
	delete(ws.in, ssrc)
	ws.mu.Unlock()
	if ok {
		s.unpublishLayer(e.pub, e.idx, e.l)
	}
}

// onWireFeedback acts on a NACK, PLI or FIR about a track the node sends
// the participant, on the delivering goroutine.
func (s *Session) onWireFeedback(ssrc uint32, pkt []byte) {
	ws := s.wc
	ws.mu.RLock()
	d := ws.out[ssrc]
	ws.mu.RUnlock()
	if d != nil {
		d.onRTCP(pkt, &ws.rs)
	}
}

// onWireState follows the transport: media flows once it is connected,
// and the session ends when it fails or the participant closed it.
func (s *Session) onWireState(st wire.State) {
	switch st {
	case wire.StateConnected:
		s.sfu.goOwned(s.requestKeyframes)
	case wire.StateFailed, wire.StateClosed:
		s.sfu.goOwned(func() { s.end(errTransportFailed) })
	}
}

// closeWire closes the connection and takes what the participant
// published off the room.
func (s *Session) closeWire() {
	ws := s.wc
	if err := ws.conn.close(); err != nil {
		s.sfu.log.Debug("sfu close", "member", s.member, "err", err)
	}
	ws.mu.Lock()
	layers := make([]wireLayer, 0, len(ws.in))
	for _, l := range ws.in {
		layers = append(layers, l)
	}
	clear(ws.in)
	clear(ws.out)
	ws.mu.Unlock()
	for _, l := range layers {
		s.unpublishLayer(l.pub, l.idx, l.l)
	}
}

// chainWriter writes a bound track through the connection's interceptor
// chain, as pion's track writer does: nothing written (0, nil) before the
// transport is connected, which the track's writer counts as not ready.
type chainWriter struct{ w interceptor.RTPWriter }

func (c chainWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n, err := c.w.Write(h, payload, nil)
	if errors.Is(err, wire.ErrNotConnected) {
		return 0, nil
	}
	return n, err
}

func (c chainWriter) Write(b []byte) (int, error) {
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		return 0, err
	}
	return c.WriteRTP(&p.Header, p.Payload)
}
