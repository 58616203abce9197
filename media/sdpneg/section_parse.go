package sdpneg

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pion/sdp/v3"
)

// sectionParser collects an m-section's attributes, which may come in
// any order, and puts them together in finish.
type sectionParser struct {
	s        *remoteSection
	rtpmap   map[uint8]Codec
	fmtp     map[uint8]string
	feedback map[uint8][]string
	wildFB   []string // rtcp-fb:*
	ssrcs    []uint32
	fid      map[uint32]uint32 // media SSRC -> RTX SSRC
	rids     []string          // a=rid ... send
	simul    []RID             // a=simulcast:send
	msid     string
	ssrcMsid string
}

func newSectionParser(s *remoteSection) *sectionParser {
	s.exts = map[string]int{}
	return &sectionParser{s: s, rtpmap: map[uint8]Codec{}, fmtp: map[uint8]string{},
		feedback: map[uint8][]string{}, fid: map[uint32]uint32{}}
}

func (p *sectionParser) attr(a sdp.Attribute) error {
	var err error
	switch a.Key {
	case "sendrecv":
		p.s.dir = dirSendRecv
	case "sendonly":
		p.s.dir = dirSend
	case "recvonly":
		p.s.dir = dirRecv
	case "inactive":
		p.s.dir = dirInactive
	case "rtpmap":
		err = p.parseRtpmap(a.Value)
	case "fmtp":
		err = p.parseFmtp(a.Value)
	case "rtcp-fb":
		err = p.parseFeedback(a.Value)
	case "extmap":
		err = p.parseExtmap(a.Value)
	case "msid":
		if p.msid == "" {
			p.msid = a.Value
		}
	case "ssrc":
		err = p.parseSSRC(a.Value)
	case "ssrc-group":
		err = p.parseSSRCGroup(a.Value)
	case "rid":
		err = p.parseRID(a.Value)
	case "simulcast":
		err = p.parseSimulcast(a.Value)
	}
	if err != nil {
		return fmt.Errorf("a=%s:%s: %w", a.Key, a.Value, err)
	}
	return nil
}

// payloadType reads a payload type, 0 to 127.
func payloadType(v string) (uint8, error) {
	n, err := parseUint(v, 7)
	return uint8(n), err
}

func (p *sectionParser) parseRtpmap(v string) error {
	ptS, enc, ok := strings.Cut(v, " ")
	if !ok {
		return ErrMalformed
	}
	pt, err := payloadType(ptS)
	if err != nil {
		return err
	}
	if _, dup := p.rtpmap[pt]; dup {
		return fmt.Errorf("payload type %d mapped twice: %w", pt, ErrMalformed)
	}
	parts := strings.Split(strings.TrimSpace(enc), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
		return ErrMalformed
	}
	clock, err := parseUint(parts[1], 32)
	if err != nil {
		return err
	}
	c := Codec{PayloadType: pt, Name: parts[0], ClockRate: uint32(clock)}
	if len(parts) == 3 {
		ch, err := parseUint(parts[2], 16)
		if err != nil {
			return err
		}
		c.Channels = uint16(ch)
	}
	p.rtpmap[pt] = c
	return nil
}

func (p *sectionParser) parseFmtp(v string) error {
	ptS, params, _ := strings.Cut(v, " ")
	pt, err := payloadType(ptS)
	if err != nil {
		return err
	}
	p.fmtp[pt] = strings.TrimSpace(params)
	return nil
}

func (p *sectionParser) parseFeedback(v string) error {
	ptS, fb, ok := strings.Cut(v, " ")
	fb = strings.TrimSpace(fb)
	if !ok || fb == "" {
		return ErrMalformed
	}
	if ptS == "*" {
		p.wildFB = append(p.wildFB, fb)
		return nil
	}
	pt, err := payloadType(ptS)
	if err != nil {
		return err
	}
	p.feedback[pt] = append(p.feedback[pt], fb)
	return nil
}

func (p *sectionParser) parseExtmap(v string) error {
	f := strings.Fields(v)
	if len(f) < 2 {
		return ErrMalformed
	}
	idS, _, _ := strings.Cut(f[0], "/")
	id, err := parseUint(idS, 8)
	if err != nil || id < 1 || id > maxExtensionID || id == 15 {
		return fmt.Errorf("extension id %q: %w", f[0], ErrMalformed)
	}
	for uri, other := range p.s.exts {
		if other == int(id) && uri != f[1] {
			return fmt.Errorf("extension id %d used twice: %w", id, ErrMalformed)
		}
	}
	p.s.exts[f[1]] = int(id)
	return nil
}

func (p *sectionParser) parseSSRC(v string) error {
	idS, attr, _ := strings.Cut(v, " ")
	n, err := parseUint(idS, 32)
	if err != nil {
		return err
	}
	ssrc := uint32(n)
	if !slices.Contains(p.ssrcs, ssrc) {
		if len(p.ssrcs) == maxSSRCs {
			return fmt.Errorf("more than %d SSRCs: %w", maxSSRCs, ErrTooLarge)
		}
		p.ssrcs = append(p.ssrcs, ssrc)
	}
	if val, ok := strings.CutPrefix(attr, "msid:"); ok && p.ssrcMsid == "" {
		p.ssrcMsid = val
	}
	return nil
}

func (p *sectionParser) parseSSRCGroup(v string) error {
	f := strings.Fields(v)
	if len(f) == 0 {
		return ErrMalformed
	}
	var ids []uint32
	for _, s := range f[1:] {
		n, err := parseUint(s, 32)
		if err != nil {
			return err
		}
		ids = append(ids, uint32(n))
	}
	if f[0] != "FID" {
		return nil // SIM, FEC-FR: not used by the node
	}
	if len(ids) != 2 {
		return fmt.Errorf("FID group of %d SSRCs: %w", len(ids), ErrMalformed)
	}
	p.fid[ids[0]] = ids[1]
	return nil
}

func (p *sectionParser) parseRID(v string) error {
	f := strings.Fields(v)
	if len(f) < 2 || !validToken(f[0], false) {
		return ErrMalformed
	}
	switch f[1] {
	case "send":
		if slices.Contains(p.rids, f[0]) {
			return fmt.Errorf("rid %q repeated: %w", f[0], ErrMalformed)
		}
		if len(p.rids) == maxRIDs {
			return fmt.Errorf("more than %d rids: %w", maxRIDs, ErrTooLarge)
		}
		p.rids = append(p.rids, f[0])
	case "recv":
	default:
		return fmt.Errorf("rid direction %q: %w", f[1], ErrMalformed)
	}
	return nil
}

// parseSimulcast reads the send half of a=simulcast; alternatives
// ("q,h") count as layers of their own.
func (p *sectionParser) parseSimulcast(v string) error {
	f := strings.Fields(v)
	if len(f)%2 != 0 || len(f) == 0 {
		return ErrMalformed
	}
	for i := 0; i < len(f); i += 2 {
		if f[i] != "send" {
			continue
		}
		for _, alt := range strings.FieldsFunc(f[i+1], func(r rune) bool { return r == ';' || r == ',' }) {
			id, paused := strings.CutPrefix(alt, "~")
			if !validToken(id, false) {
				return fmt.Errorf("rid %q: %w", alt, ErrMalformed)
			}
			if len(p.simul) == maxRIDs {
				return fmt.Errorf("more than %d rids: %w", maxRIDs, ErrTooLarge)
			}
			p.simul = append(p.simul, RID{ID: id, Paused: paused})
		}
	}
	return nil
}

// finish puts the codecs and the sender together.
func (p *sectionParser) finish() error {
	if len(p.s.formats) > lastDynamicPT+1 {
		return fmt.Errorf("%d formats: %w", len(p.s.formats), ErrTooLarge)
	}
	seen, rtx := map[uint8]bool{}, p.rtxByApt()
	for _, f := range p.s.formats {
		pt, err := payloadType(f)
		if err != nil {
			return fmt.Errorf("format %q: %w", f, err)
		}
		if seen[pt] {
			return fmt.Errorf("format %d repeated: %w", pt, ErrMalformed)
		}
		seen[pt] = true
		c, ok := p.rtpmap[pt]
		if !ok || strings.EqualFold(c.Name, rtxName) {
			continue
		}
		c.Fmtp = p.fmtp[pt]
		c.Feedback = append(slices.Clone(p.wildFB), p.feedback[pt]...)
		c.RTX = rtx[pt]
		p.s.codecs = append(p.s.codecs, c)
	}
	if p.s.dir&dirSend == 0 || p.s.stopped {
		return nil
	}
	return p.finishSender()
}

// rtxByApt maps each codec's payload type to that of its RTX format,
// among those of the m-line.
func (p *sectionParser) rtxByApt() map[uint8]uint8 {
	out := map[uint8]uint8{}
	for _, f := range p.s.formats {
		rpt, err := payloadType(f)
		c, ok := p.rtpmap[rpt]
		if err != nil || !ok || !strings.EqualFold(c.Name, rtxName) {
			continue
		}
		if apt, err := payloadType(fmtpParam(p.fmtp[rpt], "apt")); err == nil {
			if _, dup := out[apt]; !dup {
				out[apt] = rpt
			}
		}
	}
	return out
}

func (p *sectionParser) finishSender() error {
	snd := &p.s.sender
	msid := p.msid
	if msid == "" {
		msid = p.ssrcMsid
	}
	snd.StreamID, snd.TrackID, _ = strings.Cut(msid, " ")
	rtx := map[uint32]bool{}
	for _, r := range p.fid {
		rtx[r] = true
	}
	for _, ssrc := range p.ssrcs {
		if !rtx[ssrc] {
			snd.SSRCs = append(snd.SSRCs, SSRC{SSRC: ssrc, RTX: p.fid[ssrc]})
		}
	}
	for _, r := range p.simul {
		if !slices.Contains(p.rids, r.ID) {
			return fmt.Errorf("simulcast names rid %q, not declared to send: %w", r.ID, ErrMalformed)
		}
		snd.RIDs = append(snd.RIDs, r)
	}
	if len(p.simul) == 0 {
		for _, id := range p.rids {
			snd.RIDs = append(snd.RIDs, RID{ID: id})
		}
	}
	return nil
}

// sends reports whether the section declares something to send.
func (s *remoteSection) sends() bool {
	snd := s.sender
	return !s.stopped && s.kind != "" && s.dir&dirSend != 0 &&
		(snd.StreamID != "" || len(snd.SSRCs) > 0 || len(snd.RIDs) > 0)
}
