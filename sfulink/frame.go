package sfulink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media"
)

// Recorded media crosses the link in binary WebSocket messages, apart
// from the JSON control messages but in the same ordered queue, so that a
// track's description always precedes its packets and its end follows
// them. A message batches the packets queued when the writer takes it:
//
//	message := version(1 byte) record...
//	record  := rec(4) num(4) length(2) rtp(length)   big-endian
//
// rec is the recording's id on the link, num the track's number within
// the recording, rtp a whole RTP packet (header and payload). A message
// of another version, or with a record that does not parse, is refused
// whole.
const (
	mediaVersion = 1
	recordHeader = 10
	// maxFrame bounds a batched message; one packet alone may exceed it.
	maxFrame = 32 << 10
	// maxRTP bounds one packet: the node forwards at most an Ethernet
	// frame's worth.
	maxRTP = 1500
)

// recordVersion is the version of the recording stream a record request
// asks for; a node that speaks another refuses the request.
const recordVersion = 1

var errFrame = errors.New("malformed media frame")

// encodeRecord returns p as one record of a media message.
func encodeRecord(rec, num uint32, p *rtp.Packet) ([]byte, error) {
	size := p.MarshalSize()
	if size > maxRTP {
		return nil, fmt.Errorf("%w: %d-byte packet", errFrame, size)
	}
	b := make([]byte, recordHeader+size)
	binary.BigEndian.PutUint32(b, rec)
	binary.BigEndian.PutUint32(b[4:], num)
	binary.BigEndian.PutUint16(b[8:], uint16(size))
	if _, err := p.MarshalTo(b[recordHeader:]); err != nil {
		return nil, err
	}
	return b, nil
}

// decodeFrame checks a whole media message, then hands each record to f;
// pkt aliases data. Nothing is handed over from a message that does not
// check.
func decodeFrame(data []byte, f func(rec, num uint32, pkt []byte)) error {
	if len(data) < 1 {
		return fmt.Errorf("%w: empty", errFrame)
	}
	if data[0] != mediaVersion {
		return fmt.Errorf("%w: version %d, want %d", errFrame, data[0], mediaVersion)
	}
	if err := walkFrame(data[1:], nil); err != nil {
		return err
	}
	return walkFrame(data[1:], f)
}

func walkFrame(b []byte, f func(rec, num uint32, pkt []byte)) error {
	for len(b) > 0 {
		if len(b) < recordHeader {
			return fmt.Errorf("%w: %d bytes left of a record header", errFrame, len(b))
		}
		rec, num := binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
		n := int(binary.BigEndian.Uint16(b[8:]))
		b = b[recordHeader:]
		switch {
		case rec == 0 || num == 0:
			return fmt.Errorf("%w: recording %d track %d", errFrame, rec, num)
		case n < 12 || n > maxRTP || n > len(b):
			return fmt.Errorf("%w: %d-byte packet, %d bytes left", errFrame, n, len(b))
		case b[0]>>6 != 2:
			return fmt.Errorf("%w: not RTP version 2", errFrame)
		}
		if f != nil {
			f(rec, num, b[:n:n])
		}
		b = b[n:]
	}
	return nil
}

// wireTrack describes a recorded track in a track message.
type wireTrack struct {
	Member      string `json:"member"`
	ID          string `json:"id"`
	Kind        string `json:"kind"` // "audio" or "video"
	MimeType    string `json:"mimeType"`
	ClockRate   uint32 `json:"clockRate"`
	Channels    uint16 `json:"channels,omitempty"`
	Fmtp        string `json:"fmtp,omitempty"`
	PayloadType uint8  `json:"pt"`
}

func trackToWire(t media.RecordedTrack) *wireTrack {
	return &wireTrack{Member: t.MemberID, ID: t.TrackID, Kind: t.Kind.String(), MimeType: t.Codec.MimeType,
		ClockRate: t.Codec.ClockRate, Channels: t.Codec.Channels, Fmtp: t.Codec.SDPFmtpLine,
		PayloadType: uint8(t.Codec.PayloadType)}
}

// maxFmtp bounds a codec's format parameters on the wire.
const maxFmtp = 1024

// recordedTrack checks a track message from the node.
func (w *wireTrack) recordedTrack() (media.RecordedTrack, error) {
	var kind webrtc.RTPCodecType
	switch w.Kind {
	case "audio":
		kind = webrtc.RTPCodecTypeAudio
	case "video":
		kind = webrtc.RTPCodecTypeVideo
	default:
		return media.RecordedTrack{}, fmt.Errorf("track kind %q", w.Kind)
	}
	switch {
	case w.Member == "" || len(w.Member) > maxID || w.ID == "" || len(w.ID) > maxTrackID:
		return media.RecordedTrack{}, errors.New("track needs a member and an id of bounded length")
	case !strings.HasPrefix(strings.ToLower(w.MimeType), w.Kind+"/") || len(w.MimeType) > 64:
		return media.RecordedTrack{}, fmt.Errorf("%s track with codec %q", w.Kind, w.MimeType)
	case w.ClockRate == 0 || len(w.Fmtp) > maxFmtp || w.PayloadType > 127:
		return media.RecordedTrack{}, errors.New("track codec without a clock rate, or with a bad payload type or format")
	}
	return media.RecordedTrack{MemberID: w.Member, TrackID: w.ID, Kind: kind, Codec: webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: w.MimeType, ClockRate: w.ClockRate, Channels: w.Channels, SDPFmtpLine: w.Fmtp},
		PayloadType:        webrtc.PayloadType(w.PayloadType),
	}}, nil
}
