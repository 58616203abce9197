package sdpneg_test

import (
	"fmt"
	"strings"
)

// The member's transport in hand-written descriptions.
const (
	memberUfrag = "mufr"
	memberPwd   = "memberpassword0123456789"
	memberFP    = "sha-256 01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F:20"
)

// desc writes a description of the given m-sections, every one in the
// BUNDLE group.
func desc(sections ...string) string {
	var mids []string
	for _, s := range sections {
		if i := strings.Index(s, "a=mid:"); i >= 0 && !strings.Contains(s[:i], " 0 UDP") {
			mids = append(mids, strings.Fields(s[i+len("a=mid:"):])[0])
		}
	}
	return "v=0\r\no=- 42 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE " + strings.Join(mids, " ") + "\r\n" + strings.Join(sections, "")
}

// media writes an m-section as a browser would: audio with Opus, video
// with VP8 and its RTX format, then the extra lines.
func media(kind, mid, dir string, extra ...string) string {
	lines := []string{"m=" + kind + " 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0",
		"a=ice-ufrag:" + memberUfrag, "a=ice-pwd:" + memberPwd, "a=fingerprint:" + memberFP,
		"a=setup:actpass", "a=mid:" + mid, "a=" + dir, "a=rtcp-mux",
		"a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
		"a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"}
	if kind == "audio" {
		lines = append(lines, "a=extmap:4 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
			"a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1", "a=rtcp-fb:111 transport-cc")
	} else {
		lines[0] = "m=video 9 UDP/TLS/RTP/SAVPF 96 97"
		lines = append(lines, "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
			"a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
			"a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli", "a=rtcp-fb:96 goog-remb",
			"a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96")
	}
	return strings.Join(append(lines, extra...), "\r\n") + "\r\n"
}

// sending are the lines of a member's track with an RTX stream.
func sending(track string, ssrc uint32) []string {
	return []string{"a=msid:stream " + track, fmt.Sprintf("a=ssrc-group:FID %d %d", ssrc, ssrc+1),
		fmt.Sprintf("a=ssrc:%d cname:c", ssrc), fmt.Sprintf("a=ssrc:%d cname:c", ssrc+1)}
}

// simulcast are the lines of a camera in three layers.
func simulcast(track string) []string {
	return []string{"a=msid:stream " + track, "a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f"}
}

// stopped writes a stopped m-section.
func stopped(kind, mid string) string {
	return "m=" + kind + " 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:" + mid + "\r\na=inactive\r\n"
}
