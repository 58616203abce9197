package sdpneg

import (
	"slices"
	"strings"
)

// The header extensions the node negotiates: the MID, RID and repaired
// RID that BUNDLE and simulcast need (RFC 8843, 8852), transport-wide
// congestion control, and the audio level (RFC 6464).
const (
	URIMid         = "urn:ietf:params:rtp-hdrext:sdes:mid"
	URIRID         = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
	URIRepairedRID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
	URITransportCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
	URIAudioLevel  = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
)

const (
	maxExtensionID    = 255 // two-byte headers (RFC 8285)
	maxOneByteExtID   = 14
	firstDynamicPT    = 96
	lastDynamicPT     = 127
	rtxName           = "rtx"
	h264PacketMode1   = "packetization-mode=1"
	h264ProfileParam  = "profile-level-id="
	opusDefaultParams = "minptime=10;useinbandfec=1"
)

// extensionsOf are the extensions of each kind, in the order the node
// offers them.
func extensionsOf(k Kind) []string {
	if k == Audio {
		return []string{URIMid, URITransportCC, URIAudioLevel}
	}
	return []string{URIMid, URIRID, URIRepairedRID, URITransportCC}
}

// feedbackOf is the RTCP feedback the node negotiates for a kind.
func feedbackOf(k Kind) []string {
	if k == Audio {
		return []string{"transport-cc"}
	}
	return []string{"goog-remb", "ccm fir", "nack", "nack pli", "transport-cc"}
}

// nodeCodecs are the node's codecs of a kind in its order of preference,
// with the payload types it offers them under: Opus; VP8, which every
// browser sends first; H.264 baseline and constrained baseline,
// packetization mode 1; each video codec with RTX at the next payload
// type.
func nodeCodecs(k Kind) []Codec {
	if k == Audio {
		return []Codec{{PayloadType: 111, Name: "opus", ClockRate: 48000, Channels: 2, Fmtp: opusDefaultParams, Feedback: feedbackOf(Audio)}}
	}
	fb := feedbackOf(Video)
	h264 := func(pt uint8, profile string) Codec {
		return Codec{PayloadType: pt, Name: "H264", ClockRate: 90000, RTX: pt + 1, Feedback: fb,
			Fmtp: "level-asymmetry-allowed=1;" + h264PacketMode1 + ";" + h264ProfileParam + profile}
	}
	return []Codec{
		{PayloadType: 96, Name: "VP8", ClockRate: 90000, RTX: 97, Feedback: fb},
		h264(102, "42001f"),
		h264(106, "42e01f"),
	}
}

// fmtpParam is the value of one parameter of an fmtp line, key
// case-insensitive.
func fmtpParam(fmtp, key string) string {
	for kv := range strings.SplitSeq(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// sameCodec reports whether a codec offered is the node's c: same name,
// clock rate and channels, and for H.264 the same profile (the level may
// differ) in packetization mode 1.
func sameCodec(c, offered Codec) bool {
	if !strings.EqualFold(c.Name, offered.Name) || c.ClockRate != offered.ClockRate {
		return false
	}
	if c.Channels > 1 && offered.Channels != c.Channels {
		return false
	}
	if !strings.EqualFold(c.Name, "H264") {
		return true
	}
	if fmtpParam(offered.Fmtp, "packetization-mode") != "1" {
		return false
	}
	pw, pg := fmtpParam(c.Fmtp, "profile-level-id"), fmtpParam(offered.Fmtp, "profile-level-id")
	return len(pw) == 6 && len(pg) == 6 && strings.EqualFold(pw[:4], pg[:4])
}

// nodeCodecFor returns the node's codec an offered one matches.
func nodeCodecFor(k Kind, offered Codec) (Codec, bool) {
	for _, c := range nodeCodecs(k) {
		if sameCodec(c, offered) {
			return c, true
		}
	}
	return Codec{}, false
}

// answerCodecs selects, in the offerer's order, the offered codecs the
// node has, under the offerer's payload types, with the feedback both
// support and their RTX formats where offered.
func answerCodecs(k Kind, offered []Codec) []Codec {
	var out []Codec
	for _, o := range offered {
		c, ok := nodeCodecFor(k, o)
		if !ok || slices.ContainsFunc(out, func(x Codec) bool { return x.PayloadType == o.PayloadType }) {
			continue
		}
		o.Feedback = commonFeedback(c.Feedback, o.Feedback)
		if c.RTX == 0 {
			o.RTX = 0
		}
		out = append(out, o)
	}
	return out
}

// commonFeedback keeps the feedback of offered that the node supports.
func commonFeedback(node, offered []string) []string {
	var out []string
	for _, f := range offered {
		if slices.Contains(node, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// answerExtensions keeps the offered extensions of the node's, under the
// offerer's ids.
func answerExtensions(k Kind, offered map[string]int) map[string]int {
	out := map[string]int{}
	for _, uri := range extensionsOf(k) {
		if id, ok := offered[uri]; ok {
			out[uri] = id
		}
	}
	return out
}
