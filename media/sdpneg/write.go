package sdpneg

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// write marshals secs as the node's description, offer or answer, with
// the node's DTLS setup.
func (n *Negotiator) write(secs []*section, setup Setup, offer bool) (string, error) {
	d := &sdp.SessionDescription{
		Origin: sdp.Origin{Username: "-", SessionID: n.sessionID, SessionVersion: n.version,
			NetworkType: "IN", AddressType: "IP4", UnicastAddress: "0.0.0.0"},
		SessionName:      "-",
		TimeDescriptions: []sdp.TimeDescription{{}},
	}
	var bundle []string
	for _, s := range secs {
		if !s.stopped {
			bundle = append(bundle, s.mid)
		}
	}
	if len(bundle) > 0 {
		d.Attributes = append(d.Attributes, sdp.NewAttribute("group", "BUNDLE "+strings.Join(bundle, " ")))
	}
	d.Attributes = append(d.Attributes, sdp.NewPropertyAttribute("ice-lite"))
	for _, s := range secs {
		if s.stopped {
			d.MediaDescriptions = append(d.MediaDescriptions, stoppedMedia(s))
			continue
		}
		d.MediaDescriptions = append(d.MediaDescriptions, n.media(s, setup, offer))
	}
	b, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("marshal: %w", err)
	}
	return string(b), nil
}

func connection() *sdp.ConnectionInformation {
	return &sdp.ConnectionInformation{NetworkType: "IN", AddressType: "IP4", Address: &sdp.Address{Address: "0.0.0.0"}}
}

// stoppedMedia is a stopped or rejected section: port 0, its mid, and
// the codecs it had where it had any, each with its rtpmap, which strict
// parsers (pion's) look up for every format even of a rejected section.
func stoppedMedia(s *section) *sdp.MediaDescription {
	formats := s.formats
	if len(formats) == 0 {
		formats = []string{"0"}
	}
	proto := s.proto
	if proto == "" {
		proto = "UDP/TLS/RTP/SAVPF"
	}
	m := &sdp.MediaDescription{
		MediaName:             sdp.MediaName{Media: s.media, Port: sdp.RangedPort{Value: 0}, Protos: strings.Split(proto, "/"), Formats: formats},
		ConnectionInformation: connection(),
		Attributes:            []sdp.Attribute{sdp.NewAttribute("mid", s.mid), sdp.NewPropertyAttribute("inactive")},
	}
	if len(s.codecs) > 0 {
		m.MediaName.Formats = nil
		for _, c := range s.codecs {
			m.MediaName.Formats = append(m.MediaName.Formats, strconv.Itoa(int(c.PayloadType)))
			m.Attributes = append(m.Attributes, sdp.NewAttribute("rtpmap", rtpmap(c)))
		}
	}
	return m
}

// rtpmap is a codec's a=rtpmap value.
func rtpmap(c Codec) string {
	enc := fmt.Sprintf("%d %s/%d", c.PayloadType, c.Name, c.ClockRate)
	if c.Channels > 0 {
		enc += "/" + strconv.Itoa(int(c.Channels))
	}
	return enc
}

// media is a section in use: transport, direction, extensions, codecs,
// the node's track and the member's simulcast layers.
func (n *Negotiator) media(s *section, setup Setup, offer bool) *sdp.MediaDescription {
	m := &sdp.MediaDescription{
		MediaName:             sdp.MediaName{Media: s.media, Port: sdp.RangedPort{Value: 9}, Protos: strings.Split(s.proto, "/")},
		ConnectionInformation: connection(),
	}
	add := func(k, v string) { m.Attributes = append(m.Attributes, sdp.NewAttribute(k, v)) }
	flag := func(k string) { m.Attributes = append(m.Attributes, sdp.NewPropertyAttribute(k)) }
	add("mid", s.mid)
	add("ice-ufrag", n.cfg.Ufrag)
	add("ice-pwd", n.cfg.Pwd)
	for _, f := range n.cfg.Fingerprints {
		add("fingerprint", f.Algorithm+" "+f.Value)
	}
	add("setup", string(setup))
	flag(nodeDirection(s, offer).String())
	flag("rtcp-mux")
	for _, uri := range slices.SortedFunc(maps.Keys(s.exts), func(a, b string) int { return cmp.Compare(s.exts[a], s.exts[b]) }) {
		add("extmap", strconv.Itoa(s.exts[uri])+" "+uri)
	}
	for _, c := range s.codecs {
		m.MediaName.Formats = append(m.MediaName.Formats, strconv.Itoa(int(c.PayloadType)))
		writeCodec(add, c)
		if c.RTX != 0 {
			m.MediaName.Formats = append(m.MediaName.Formats, strconv.Itoa(int(c.RTX)))
			add("rtpmap", fmt.Sprintf("%d %s/%d", c.RTX, rtxName, c.ClockRate))
			add("fmtp", fmt.Sprintf("%d apt=%d", c.RTX, c.PayloadType))
		}
	}
	if s.track != nil {
		writeTrack(add, s.track, slices.ContainsFunc(s.codecs, func(c Codec) bool { return c.RTX != 0 }))
	}
	if s.memberDir&dirSend != 0 && len(s.member.RIDs) > 0 {
		writeSimulcastRecv(add, s.member.RIDs)
	}
	for _, c := range n.cfg.Candidates {
		add("candidate", strings.TrimPrefix(c, "a="))
	}
	flag("end-of-candidates")
	return m
}

// nodeDirection is the node's direction on a section: it sends its
// track where the member receives (in an offer: wherever it has one), and
// receives where the member sends.
func nodeDirection(s *section, offer bool) direction {
	var d direction
	if s.track != nil && (offer || s.memberDir&dirRecv != 0) {
		d |= dirSend
	}
	if s.memberDir&dirSend != 0 {
		d |= dirRecv
	}
	return d
}

func writeCodec(add func(k, v string), c Codec) {
	add("rtpmap", rtpmap(c))
	if c.Fmtp != "" {
		add("fmtp", fmt.Sprintf("%d %s", c.PayloadType, c.Fmtp))
	}
	for _, fb := range c.Feedback {
		add("rtcp-fb", fmt.Sprintf("%d %s", c.PayloadType, fb))
	}
}

// writeTrack announces the node's track: msid, and its SSRC with its RTX
// SSRC in an FID group where RTX is negotiated.
func writeTrack(add func(k, v string), t *Track, rtx bool) {
	msid := t.StreamID + " " + t.ID
	add("msid", msid)
	cname := t.CNAME
	if cname == "" {
		cname = t.StreamID
	}
	ssrcs := []uint32{t.SSRC}
	if rtx && t.RTXSSRC != 0 {
		ssrcs = append(ssrcs, t.RTXSSRC)
		add("ssrc-group", fmt.Sprintf("FID %d %d", t.SSRC, t.RTXSSRC))
	}
	for _, ssrc := range ssrcs {
		add("ssrc", fmt.Sprintf("%d cname:%s", ssrc, cname))
		add("ssrc", fmt.Sprintf("%d msid:%s", ssrc, msid))
	}
}

// writeSimulcastRecv mirrors the member's simulcast layers.
func writeSimulcastRecv(add func(k, v string), rids []RID) {
	list := make([]string, len(rids))
	for i, r := range rids {
		add("rid", r.ID+" recv")
		list[i] = r.ID
		if r.Paused {
			list[i] = "~" + r.ID
		}
	}
	add("simulcast", "recv "+strings.Join(list, ";"))
}
