package media

import (
	"slices"

	"github.com/pion/webrtc/v4"
)

// What a session on pion's PeerConnection does that a session on the
// node's own transport (wiresession.go) does its own way.

// watchPion follows pion's connection: its tracks and its state.
func (s *Session) watchPion() {
	s.pc.OnTrack(s.onTrack)
	s.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			s.requestKeyframes()
		case webrtc.PeerConnectionStateFailed:
			s.end(errTransportFailed)
		}
	})
}

// subscribeRoom gives the session everything already published in the
// room, after its first offer: a transceiver added before it would be
// matched to one of the participant's offered m-lines, so the node would
// send on the participant's own (perhaps simulcast) sender's line. A
// section the participant offered to receive only (a member without
// camera or microphone) carries a publication of its kind already in the
// answer to this offer; the rest come with the node's next offer.
func (s *Session) subscribeRoom() {
	s.sfu.mu.Lock()
	defer s.sfu.mu.Unlock()
	if s.subscribed || s.closed {
		return
	}
	s.subscribed = true
	s.youngUntil = s.sfu.now() + int64(memberYoung)
	free := s.receiveOnlySections()
	for _, pub := range s.room.pubs {
		if pub.owner.member == s.member {
			continue
		}
		// pion's AddTrack takes the first of them of the track's kind.
		onOffered := false
		if i := slices.IndexFunc(free, func(t *webrtc.RTPTransceiver) bool { return t.Kind() == pub.webrtcKind() }); i >= 0 {
			if _, ok := matchCodec(pub.codec, free[i].Receiver().GetParameters().Codecs); ok {
				onOffered = true
				free = slices.Delete(free, i, i+1)
			}
		}
		s.subscribeLocked(pub, onOffered)
	}
}

// receiveOnlySections returns, in the connection's order, the
// transceivers of the sections the remote offer only receives on, which
// pion answers send-only, of each kind for which pion's AddTrack would
// take nothing else: no transceiver of that kind without a sender that
// receives what the participant publishes.
func (s *Session) receiveOnlySections() []*webrtc.RTPTransceiver {
	var free []*webrtc.RTPTransceiver
	unsafe := map[webrtc.RTPCodecType]bool{}
	for _, t := range s.pc.GetTransceivers() {
		if t.Sender() != nil {
			continue
		}
		if t.Mid() != "" && t.Direction() == webrtc.RTPTransceiverDirectionSendonly {
			free = append(free, t)
		} else {
			unsafe[t.Kind()] = true
		}
	}
	return slices.DeleteFunc(free, func(t *webrtc.RTPTransceiver) bool { return unsafe[t.Kind()] })
}

// applyEarlyCandidates adds candidates that arrived before the offer; the
// caller holds negMu.
func (s *Session) applyEarlyCandidates() {
	for _, c := range s.early {
		if err := s.pc.AddICECandidate(c); err != nil {
			s.sfu.log.Debug("early candidate", "member", s.member, "err", err)
		}
	}
	s.early = nil
}

// offerToSend is the node's offer just set, without the sections the
// participant stopped (see omitStopped); the caller holds negMu.
func (s *Session) offerToSend() string {
	offer := s.pc.LocalDescription().SDP
	remote := s.pc.CurrentRemoteDescription()
	if remote == nil {
		return offer
	}
	sent, err := omitStopped(offer, remote.SDP)
	if err != nil {
		s.sfu.log.Warn("sfu offer", "member", s.member, "err", err)
		return offer
	}
	return sent
}

// onTrack runs on the goroutine pion starts for each received track (each
// simulcast layer is one): it publishes the track, or adds the layer to
// it, and forwards it (read).
func (s *Session) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	if !s.sfu.enter() {
		return
	}
	pub, idx, l, ok := s.publish(pionTrack(s, remote, receiver), uint32(remote.SSRC()))
	if !ok {
		s.sfu.wg.Done()
		return
	}
	s.read(pub, remote, receiver, idx, l)
}

// read forwards one layer of a publication until it ends, and then
// takes it off the room; it holds the count of the node's wait group
// onTrack took until then.
//
// What pion read while probing the layer, before onTrack, comes first,
// read here through pion's reader for the layer, blocking; once a packet
// comes from the layer's own queue, pion kept nothing more, and the
// layer is read as its packets arrive (streams.go), on pion's SRTP
// goroutine, and this one ends. A layer whose queue is unknown is read
// here to its end.
func (s *Session) read(pub *publication, remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver, idx int, l *layer) {
	ssrc := uint32(remote.SSRC())
	rr := publisherRTCPReader(receiver, remote.RID(), ssrc)
	s.streams.attach(rr)
	end := func(error) {
		s.streams.detach(rr)
		s.unpublishLayer(pub, idx, l)
		s.sfu.wg.Done()
	}
	for {
		q := s.streams.queue(rtpStreams, ssrc)
		var before uint64
		if q != nil {
			before = q.readCount()
		}
		if err := pub.readOne(remote, idx, l); err != nil {
			end(err)
			return
		}
		if q != nil && q.readCount() != before {
			break
		}
	}
	s.streams.attachAndRead(&streamReader{kind: rtpStreams, ssrc: ssrc, ended: end,
		read: func([]byte, *resender) error { return pub.readOne(remote, idx, l) }})
}

// sendOn sends d on the first receive-only section of the offer being
// answered that has no track yet (onOffered), or on a send-only
// transceiver of its own, never one the participant publishes on.
func (s *Session) sendOn(d *downTrack, onOffered bool) (*webrtc.RTPSender, error) {
	if onOffered {
		return s.pc.AddTrack(d)
	}
	tr, err := s.pc.AddTransceiverFromTrack(d, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, err
	}
	return tr.Sender(), nil
}
