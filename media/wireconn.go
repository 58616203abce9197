package media

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media/sdpneg"
	"github.com/openconsult/openconsult/media/wire"
)

// wireConn is one participant's connection on the node's own transport:
// the offer/answer (sdpneg), the transport on the shared port
// (wire.Conn), the received streams placed in their sections and layers
// (wire.Inbound) and read up the node's interceptor chain (wireStreams),
// and the tracks the node sends it. It does for a session what pion's
// PeerConnection does, with no goroutine of its own.
type wireConn struct {
	cfg     wireConnConfig
	conn    *wire.Conn
	streams *wireStreams
	inbound *wire.Inbound

	negMu   sync.Mutex // one negotiation step at a time
	neg     *sdpneg.Negotiator
	local   wire.Credentials
	started bool

	secMu    sync.RWMutex
	sections map[string]sdpneg.Section // by mid, as last negotiated
	bound    map[uint32]string         // received streams bound, by SSRC: their mid
}

// wireConnConfig is what a wireConn is made with.
type wireConnConfig struct {
	Port        wirePort
	Certificate wire.Certificate
	Candidates  []string // the node's, as in a=candidate without "a="
	Chain       interceptor.Interceptor
	// OnStream learns of each stream the participant starts sending, on
	// the goroutine that received its first packet, and returns where its
	// packets go once read up the chain. An RTX stream's packets come to
	// its handler as the packets they repair (wire.UnwrapRTX).
	OnStream func(s inStream) func(p []byte, a interceptor.Attributes)
	// OnStreamEnded learns of each stream whose section the participant
	// no longer sends on, once a negotiation said so.
	OnStreamEnded func(ssrc uint32)
	// OnFeedback gets each NACK, PLI and FIR the participant sends, with
	// the SSRC of the node's stream it is about, on the delivering
	// goroutine; pkt is valid until it returns.
	OnFeedback func(ssrc uint32, pkt []byte)
	OnState    func(wire.State)
}

// wirePort is the shared port a connection is on: a wire.Port, or one
// per address of the host's (portSet).
type wirePort interface {
	LocalAddr() net.Addr
	Send(b []byte, to netip.AddrPort) error
	Route(ufrag string, c *wire.Conn) error
	Forget(c *wire.Conn)
	IsTCP(addr netip.AddrPort) bool
}

// inStream is a received stream: where it belongs and its codec.
type inStream struct {
	wire.Route
	SSRC    uint32
	Section sdpneg.Section
	Codec   sdpneg.Codec // the media codec, also for an RTX stream
}

func newWireConn(cfg wireConnConfig) (*wireConn, error) {
	local := newCredentials()
	alg, value, _ := strings.Cut(cfg.Certificate.Fingerprint, " ")
	neg, err := sdpneg.New(sdpneg.Config{Ufrag: local.Ufrag, Pwd: local.Pwd,
		Fingerprints: []sdpneg.Fingerprint{{Algorithm: alg, Value: value}}, Candidates: cfg.Candidates})
	if err != nil {
		return nil, err
	}
	w := &wireConn{cfg: cfg, streams: newWireStreams(cfg.Chain), inbound: wire.NewInbound(), neg: neg, local: local,
		sections: map[string]sdpneg.Section{}, bound: map[uint32]string{}}
	w.streams.onUnknown = w.newStream
	if cfg.OnFeedback != nil {
		w.streams.onRTCP = func(p []byte) { forEachFeedback(p, cfg.OnFeedback) }
	}
	w.conn, err = wire.New(wire.Config{Local: local, Certificate: cfg.Certificate, LocalAddr: cfg.Port.LocalAddr(),
		Send: cfg.Port.Send, Handler: w.streams, OnState: cfg.OnState})
	if err != nil {
		return nil, err
	}
	w.streams.attach(w.conn)
	if err := cfg.Port.Route(local.Ufrag, w.conn); err != nil {
		_ = w.conn.Close()
		return nil, err
	}
	return w, nil
}

// newCredentials are fresh ICE credentials in base32, which ice-chars
// allow: a ufrag of 8 characters (40 bits) and a password of 26 (128).
func newCredentials() wire.Credentials {
	return wire.Credentials{Ufrag: rand.Text()[:8], Pwd: rand.Text()}
}

// applyOffer applies the participant's offer and returns the node's
// answer, and the node's tracks whose sections the offer stopped; the
// first starts the transport. place, if set, is given the offered
// sections before the answer is made, and returns tracks to send at once
// on sections the participant only receives on, by mid.
func (w *wireConn) applyOffer(offer string, place func([]sdpneg.Section) map[string]sdpneg.Track) (string, []string, error) {
	w.negMu.Lock()
	defer w.negMu.Unlock()
	upd, err := w.neg.ApplyOffer(offer)
	if err != nil {
		return "", nil, err
	}
	var dropped []string
	for _, c := range upd.Changes {
		if c.Kind == sdpneg.TrackDropped {
			dropped = append(dropped, c.TrackID)
		}
	}
	if place != nil {
		for mid, t := range place(upd.Sections) {
			if err := w.neg.AddTrackOn(mid, t); err != nil {
				_ = w.neg.Rollback()
				return "", nil, err
			}
		}
	}
	if upd.ICERestart && w.started {
		w.local = newCredentials()
		if err := w.neg.SetCredentials(w.local.Ufrag, w.local.Pwd); err != nil {
			return "", nil, err
		}
	}
	answer, err := w.neg.CreateAnswer()
	if err != nil {
		return "", nil, err
	}
	return answer, dropped, w.applied(upd)
}

// applyAnswer applies the participant's answer to the node's offer.
func (w *wireConn) applyAnswer(answer string) error {
	w.negMu.Lock()
	defer w.negMu.Unlock()
	upd, err := w.neg.ApplyAnswer(answer)
	if err != nil {
		return err
	}
	return w.applied(upd)
}

// applied takes a completed negotiation: the sections (with the node's
// tracks on them), where received SSRCs go, and the transport's remote
// side. The caller holds negMu.
func (w *wireConn) applied(upd *sdpneg.Update) error {
	w.describe(w.neg.Sections())
	remote := wire.Credentials{Ufrag: upd.Transport.Ufrag, Pwd: upd.Transport.Pwd}
	if w.started {
		if upd.ICERestart {
			if err := w.cfg.Port.Route(w.local.Ufrag, w.conn); err != nil {
				return err
			}
			return w.conn.Restart(w.local, remote)
		}
		return nil
	}
	fps := make([]string, 0, len(upd.Transport.Fingerprints))
	for _, f := range upd.Transport.Fingerprints {
		fps = append(fps, f.Algorithm+" "+f.Value)
	}
	w.started = true
	return w.conn.Start(remote, fps, w.neg.Role() == sdpneg.Active)
}

// describe notes the negotiated sections and tells the router which
// sections the participant sends on and which SSRCs it declared.
func (w *wireConn) describe(secs []sdpneg.Section) {
	var ids wire.ExtensionIDs
	var sending []string
	declared := map[uint32]wire.Route{}
	byMid := make(map[string]sdpneg.Section, len(secs))
	for _, s := range secs {
		byMid[s.Mid] = s
		// One id per extension across the BUNDLE group; audio sections
		// negotiate no RID, so each is taken where it is.
		ids.MID = cmp.Or(ids.MID, uint8(s.Extensions[wire.MIDURI]))
		ids.RID = cmp.Or(ids.RID, uint8(s.Extensions[wire.RIDURI]))
		ids.RepairedRID = cmp.Or(ids.RepairedRID, uint8(s.Extensions[wire.RepairedRIDURI]))
		if !s.MemberSends || s.Stopped {
			continue
		}
		sending = append(sending, s.Mid)
		if len(s.Member.RIDs) > 0 {
			continue // layers are told apart by their RIDs
		}
		for _, ss := range s.Member.SSRCs {
			declared[ss.SSRC] = wire.Route{Mid: s.Mid}
			if ss.RTX != 0 {
				declared[ss.RTX] = wire.Route{Mid: s.Mid, RTX: true}
			}
		}
	}
	w.secMu.Lock()
	w.sections = byMid
	var ended []uint32
	for ssrc, mid := range w.bound {
		if s, ok := byMid[mid]; !ok || !s.MemberSends || s.Stopped {
			ended = append(ended, ssrc)
			delete(w.bound, ssrc)
		}
	}
	w.secMu.Unlock()
	w.inbound.Describe(ids, sending, declared)
	for _, ssrc := range ended { // the participant stopped sending them
		w.streams.unbindRemote(ssrc)
		if w.cfg.OnStreamEnded != nil {
			w.cfg.OnStreamEnded(ssrc)
		}
	}
}

// newStream binds a stream on its first packet, and delivers that
// packet. It runs on the delivering goroutine.
func (w *wireConn) newStream(p []byte, h *rtp.Header) {
	route, err := w.inbound.Route(h)
	if err != nil {
		return
	}
	w.secMu.RLock()
	sec, ok := w.sections[route.Mid]
	w.secMu.RUnlock()
	if !ok {
		return
	}
	codec, rtx, ok := codecOf(sec, h.PayloadType)
	if !ok {
		return
	}
	route.RTX = rtx // the payload type says, whatever the SSRC was declared as
	s := inStream{Route: route, SSRC: h.SSRC, Section: sec, Codec: codec}
	onRTP := w.cfg.OnStream(s)
	if onRTP == nil {
		return
	}
	if rtx {
		media, ok := w.inbound.MediaSSRC(route, h.SSRC, fidOf(sec))
		if !ok {
			return // a repair before any packet of its stream
		}
		onRTP = unwrapping(media, codec.PayloadType, onRTP)
	}
	w.secMu.Lock()
	w.bound[h.SSRC] = route.Mid
	w.secMu.Unlock()
	w.streams.bindRemote(streamInfo(h.SSRC, 0, sec, codec, rtx), onRTP)
	w.streams.RTP(p, h)
}

// fidOf is a section's declared RTX SSRCs and the SSRCs they repair.
func fidOf(sec sdpneg.Section) map[uint32]uint32 {
	fid := map[uint32]uint32{}
	for _, s := range sec.Member.SSRCs {
		if s.RTX != 0 {
			fid[s.RTX] = s.SSRC
		}
	}
	return fid
}

// unwrapping hands onRTP the packets an RTX stream repairs, as they were
// first sent on stream ssrc with payload type pt, without the chain's
// attributes, which describe the RTX packet. It runs on the delivering
// goroutine, which the connection serialises, so one header serves
// every call.
func unwrapping(ssrc uint32, pt uint8, onRTP func([]byte, interceptor.Attributes)) func([]byte, interceptor.Attributes) {
	var h rtp.Header
	return func(p []byte, _ interceptor.Attributes) {
		if _, err := h.Unmarshal(p); err != nil {
			return
		}
		if orig, err := wire.UnwrapRTX(p, &h, ssrc, pt); err == nil {
			onRTP(orig, nil)
		}
	}
}

// codecOf finds the section's codec of payload type pt, and whether pt
// is that codec's RTX format.
func codecOf(sec sdpneg.Section, pt uint8) (sdpneg.Codec, bool, bool) {
	for _, c := range sec.Codecs {
		switch {
		case c.PayloadType == pt:
			return c, false, true
		case c.RTX != 0 && c.RTX == pt:
			return c, true, true
		}
	}
	return sdpneg.Codec{}, false, false
}

// streamInfo is what the interceptors learn of a stream of codec c in
// sec: for an RTX stream (rtx), the RTX format's.
func streamInfo(ssrc, rtxSSRC uint32, sec sdpneg.Section, c sdpneg.Codec, rtx bool) *interceptor.StreamInfo {
	info := &interceptor.StreamInfo{SSRC: ssrc, PayloadType: c.PayloadType, MimeType: string(sec.Kind) + "/" + c.Name,
		ClockRate: c.ClockRate, Channels: c.Channels, SDPFmtpLine: c.Fmtp}
	if rtx {
		info.PayloadType, info.MimeType, info.SDPFmtpLine = c.RTX, webrtc.MimeTypeRTX, fmt.Sprintf("apt=%d", c.PayloadType)
	} else if rtxSSRC != 0 && c.RTX != 0 {
		info.SSRCRetransmission, info.PayloadTypeRetransmission = rtxSSRC, c.RTX
	}
	for uri, id := range sec.Extensions {
		info.RTPHeaderExtensions = append(info.RTPHeaderExtensions, interceptor.RTPHeaderExtension{URI: uri, ID: id})
	}
	for _, fb := range c.Feedback {
		typ, param, _ := strings.Cut(fb, " ")
		info.RTCPFeedback = append(info.RTCPFeedback, interceptor.RTCPFeedback{Type: typ, Parameter: param})
	}
	return info
}

// addTrack asks for t to be sent to the participant: in the node's next
// offer (createOffer), or on a section of the participant's current
// offer (mid, before the answer).
func (w *wireConn) addTrack(t sdpneg.Track, mid string) error {
	w.negMu.Lock()
	defer w.negMu.Unlock()
	if mid != "" {
		return w.neg.AddTrackOn(mid, t)
	}
	return w.neg.AddTrack(t)
}

// removeTrack stops sending the track id; the next offer says so.
func (w *wireConn) removeTrack(id string, ssrc uint32) error {
	w.streams.unbindLocal(ssrc)
	w.negMu.Lock()
	defer w.negMu.Unlock()
	return w.neg.RemoveTrack(id)
}

// stable reports whether the node may offer: the first negotiation is
// done and no offer is outstanding.
func (w *wireConn) stable() bool {
	w.negMu.Lock()
	defer w.negMu.Unlock()
	return w.started && w.neg.State() == sdpneg.Stable
}

// createOffer is the node's offer, if the tracks changed since the last
// negotiation; "" if nothing needs one.
func (w *wireConn) createOffer() (string, error) {
	w.negMu.Lock()
	defer w.negMu.Unlock()
	if !w.neg.NeedsOffer() || w.neg.State() != sdpneg.Stable {
		return "", nil
	}
	return w.neg.CreateOffer()
}

// bindTrack returns the writer of a track the node sends on a
// negotiated section, and its payload type there.
func (w *wireConn) bindTrack(id string) (interceptor.RTPWriter, uint8, error) {
	sec, c, ok := w.sentOn(id)
	if !ok {
		return nil, 0, errors.New("the track is on no negotiated section")
	}
	return w.streams.bindLocal(streamInfo(sec.Track.SSRC, sec.Track.RTXSSRC, sec, c, false)), c.PayloadType, nil
}

// sentOn finds the negotiated section the node sends track id on, and
// the codec it is sent in there.
func (w *wireConn) sentOn(id string) (sdpneg.Section, sdpneg.Codec, bool) {
	w.secMu.RLock()
	defer w.secMu.RUnlock()
	for _, s := range w.sections {
		if !s.NodeSends || s.Track == nil || s.Track.ID != id || len(s.Codecs) == 0 {
			continue
		}
		if c, ok := carrier(s, s.Track.Codec); ok {
			return s, c, true
		}
		return s, s.Codecs[0], true
	}
	return sdpneg.Section{}, sdpneg.Codec{}, false
}

// carrier is the section's codec that carries a track in want, if any.
func carrier(sec sdpneg.Section, want sdpneg.Codec) (sdpneg.Codec, bool) {
	for _, c := range sec.Codecs {
		if sdpneg.Carries(want, c) {
			return c, true
		}
	}
	return sdpneg.Codec{}, false
}

// requestKeyframe asks the participant for a keyframe of the stream
// ssrc (a picture loss indication).
func (w *wireConn) requestKeyframe(ssrc uint32) error {
	return w.streams.writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
}

// receiving reports whether the received stream ssrc is bound.
func (w *wireConn) receiving(ssrc uint32) bool {
	w.secMu.RLock()
	defer w.secMu.RUnlock()
	_, ok := w.bound[ssrc]
	return ok
}

// udpRemote is the participant's checked address, when it is one of
// UDP: writes to it go out on the shared socket, never waiting on the
// participant, as an ICE-TCP connection's may.
func (w *wireConn) udpRemote() (netip.AddrPort, bool) {
	a, ok := w.conn.Remote()
	if !ok || w.cfg.Port.IsTCP(a) {
		return netip.AddrPort{}, false
	}
	return a, true
}

// close ends the connection.
func (w *wireConn) close() error {
	w.cfg.Port.Forget(w.conn)
	err := w.conn.Close()
	return errors.Join(err, w.streams.close())
}
