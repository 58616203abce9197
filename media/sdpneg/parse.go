package sdpneg

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Bounds on what one section of a remote description may declare; a
// browser's are far below.
const (
	maxRIDs         = 8
	maxSSRCs        = 32
	maxCandidates   = 64
	maxFingerprints = 8
	maxTokenLen     = 16 // a mid or rid, sent in a one-byte header extension
)

// direction is a section's direction as its writer declares it.
type direction uint8

const (
	dirInactive direction = 0
	dirSend     direction = 1
	dirRecv     direction = 2
	dirSendRecv           = dirSend | dirRecv
)

func (d direction) String() string {
	return [...]string{"inactive", "sendonly", "recvonly", "sendrecv"}[d&dirSendRecv]
}

// remoteSection is one m-section of a remote description.
type remoteSection struct {
	mid     string
	media   string // the m-line's media type
	kind    Kind   // Audio or Video, else empty
	proto   string
	formats []string
	stopped bool // port 0
	dir     direction
	codecs  []Codec // in m-line order
	exts    map[string]int
	sender  Sender // what the writer sends, when dir has dirSend
}

// remoteDesc is a parsed remote description.
type remoteDesc struct {
	transport Transport
	bundle    []string
	sections  []remoteSection
}

// parseRemote parses and checks a remote description against the
// limits.
func parseRemote(raw string, lim limits) (*remoteDesc, error) {
	if len(raw) > lim.maxBytes {
		return nil, fmt.Errorf("%d bytes, the limit is %d: %w", len(raw), lim.maxBytes, ErrTooLarge)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(sd.MediaDescriptions) > lim.maxSections {
		return nil, fmt.Errorf("%d media sections, the limit is %d: %w", len(sd.MediaDescriptions), lim.maxSections, ErrTooLarge)
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, fmt.Errorf("no media section: %w", ErrMalformed)
	}
	d := &remoteDesc{}
	seen := map[string]bool{}
	for i, m := range sd.MediaDescriptions {
		s, err := parseSection(m)
		if err != nil {
			return nil, fmt.Errorf("media section %d: %w", i, err)
		}
		if seen[s.mid] {
			return nil, fmt.Errorf("media section %d: mid %q repeated: %w", i, s.mid, ErrMalformed)
		}
		seen[s.mid] = true
		d.sections = append(d.sections, s)
	}
	if err := d.parseBundle(&sd); err != nil {
		return nil, err
	}
	if err := d.parseTransport(&sd); err != nil {
		return nil, err
	}
	return d, nil
}

// parseBundle requires one BUNDLE group holding every section in use.
func (d *remoteDesc) parseBundle(sd *sdp.SessionDescription) error {
	for _, a := range sd.Attributes {
		if a.Key != "group" {
			continue
		}
		f := strings.Fields(a.Value)
		if len(f) > 0 && f[0] == "BUNDLE" {
			if d.bundle != nil {
				return fmt.Errorf("more than one BUNDLE group: %w", ErrUnsupported)
			}
			d.bundle = f[1:]
		}
	}
	for _, s := range d.sections {
		if !s.stopped && s.kind != "" && !slices.Contains(d.bundle, s.mid) {
			return fmt.Errorf("section %q is not in the BUNDLE group: %w", s.mid, ErrUnsupported)
		}
	}
	return nil
}

// parseTransport reads the ICE and DTLS parameters: each from the first
// section in use that has it (the BUNDLE transport), else from the
// session level.
func (d *remoteDesc) parseTransport(sd *sdp.SessionDescription) error {
	t := &d.transport
	for i, m := range sd.MediaDescriptions {
		if d.sections[i].stopped {
			continue
		}
		for _, a := range m.Attributes {
			if err := t.addMediaAttr(a); err != nil {
				return fmt.Errorf("section %q: %w", d.sections[i].mid, err)
			}
		}
	}
	for _, a := range sd.Attributes {
		if err := t.addMediaAttr(a); err != nil {
			return err
		}
	}
	return t.check()
}

func (t *Transport) addMediaAttr(a sdp.Attribute) error {
	first := func(field *string) {
		if *field == "" {
			*field = a.Value
		}
	}
	switch a.Key {
	case "ice-ufrag":
		first(&t.Ufrag)
	case "ice-pwd":
		first(&t.Pwd)
	case "setup":
		if t.Setup == "" {
			t.Setup = Setup(a.Value)
		}
	case "end-of-candidates":
		t.EndOfCandidates = true
	case "candidate":
		if !slices.Contains(t.Candidates, a.Value) {
			if len(t.Candidates) == maxCandidates {
				return fmt.Errorf("more than %d candidates: %w", maxCandidates, ErrTooLarge)
			}
			t.Candidates = append(t.Candidates, a.Value)
		}
	}
	return t.addFingerprint(a)
}

func (t *Transport) addFingerprint(a sdp.Attribute) error {
	if a.Key != "fingerprint" {
		return nil
	}
	alg, val, ok := strings.Cut(a.Value, " ")
	if !ok || alg == "" || val == "" {
		return fmt.Errorf("fingerprint %q: %w", a.Value, ErrMalformed)
	}
	f := Fingerprint{Algorithm: strings.ToLower(alg), Value: strings.ToUpper(strings.TrimSpace(val))}
	if slices.Contains(t.Fingerprints, f) {
		return nil
	}
	if len(t.Fingerprints) == maxFingerprints {
		return fmt.Errorf("more than %d fingerprints: %w", maxFingerprints, ErrTooLarge)
	}
	t.Fingerprints = append(t.Fingerprints, f)
	return nil
}

func (t *Transport) check() error {
	switch {
	case t.Ufrag == "" || t.Pwd == "":
		return fmt.Errorf("no ICE ufrag or pwd: %w", ErrMalformed)
	case len(t.Fingerprints) == 0:
		return fmt.Errorf("no DTLS fingerprint: %w", ErrUnsupported)
	}
	switch t.Setup {
	case "":
		t.Setup = Active // RFC 4145's default
	case Active, Passive, ActPass:
	default:
		return fmt.Errorf("setup %q: %w", t.Setup, ErrMalformed)
	}
	return nil
}

// parseSection reads one m-section. Port 0 is a stopped or rejected
// section, except with a=bundle-only (RFC 8843 section 6): a section that
// only ever shares the BUNDLE transport, as Firefox writes every section
// after the first of its kind in an offer.
func parseSection(m *sdp.MediaDescription) (remoteSection, error) {
	_, bundleOnly := m.Attribute("bundle-only")
	s := remoteSection{media: m.MediaName.Media, proto: strings.Join(m.MediaName.Protos, "/"),
		formats: m.MediaName.Formats, stopped: m.MediaName.Port.Value == 0 && !bundleOnly, dir: dirSendRecv}
	mid, ok := m.Attribute("mid")
	if !ok || !validToken(mid, true) {
		return s, fmt.Errorf("mid %q: %w", mid, ErrMalformed)
	}
	s.mid = mid
	if s.media != string(Audio) && s.media != string(Video) {
		return s, nil
	}
	if !s.stopped && !strings.HasSuffix(s.proto, "RTP/SAVPF") {
		return s, fmt.Errorf("section %q: transport %s: %w", mid, s.proto, ErrUnsupported)
	}
	if _, mux := m.Attribute("rtcp-mux"); !mux && !s.stopped {
		return s, fmt.Errorf("section %q: no rtcp-mux: %w", mid, ErrUnsupported)
	}
	s.kind = Kind(s.media)
	if err := s.parseAttributes(m.Attributes); err != nil {
		return s, fmt.Errorf("section %q: %w", mid, err)
	}
	return s, nil
}

// validToken reports whether v is a mid or rid the node accepts: short,
// letters, digits, '-' and '_' (and for mids '.', as some stacks write).
func validToken(v string, mid bool) bool {
	if v == "" || len(v) > maxTokenLen {
		return false
	}
	for _, c := range v {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || mid && c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// parseAttributes reads the codecs, extensions, direction and sender of
// an audio or video section.
func (s *remoteSection) parseAttributes(attrs []sdp.Attribute) error {
	p := newSectionParser(s)
	for _, a := range attrs {
		if err := p.attr(a); err != nil {
			return err
		}
	}
	return p.finish()
}

func parseUint(v string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("number %q: %w", v, ErrMalformed)
	}
	return n, nil
}
