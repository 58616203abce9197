package media

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pion/sdp/v3"
)

// A participant's browser stops the video section of its own that a
// camera turned on during the call or a screen goes on once it goes off
// (web/static/sfu.js), and puts the next one in the stopped section's
// place under a new mid (m= section recycling, RFC 8829 section 5.2.2).
// pion keeps the transceiver of a stopped section and offers it again:
// with a port while the participant's description still rejects it (the
// browser then takes it up as a new section it never gives back), and,
// once the browser put another section in its place, as a section of its
// own at the end. Each would leave the participant's descriptions one
// section longer for every camera turned off. omitStopped takes both out
// of the node's offers.

// omitStopped returns the node's offer with the sections that the
// participant's last description (remote) rejects rejected too, and
// without the sections it no longer has that send nothing (those whose
// place it took for another); both leave the BUNDLE group. Sections the
// node adds to subscribe the participant send, and stay. The first
// section stays as it is: it carries the transport of the BUNDLE group
// (sfu.js never stops it).
func omitStopped(offer, remote string) (string, error) {
	var r sdp.SessionDescription
	if err := r.UnmarshalString(remote); err != nil {
		return "", fmt.Errorf("participant's description: %w", err)
	}
	rejected := map[string]bool{} // by mid, of every section the participant described
	for _, m := range r.MediaDescriptions {
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		rejected[mid] = m.MediaName.Port.Value == 0
	}
	var o sdp.SessionDescription
	if err := o.UnmarshalString(offer); err != nil {
		return "", fmt.Errorf("node's offer: %w", err)
	}
	var kept []*sdp.MediaDescription
	out := map[string]bool{} // mids leaving the BUNDLE group
	for i, m := range o.MediaDescriptions {
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		gone, known := rejected[mid]
		switch {
		case i == 0 || m.MediaName.Port.Value == 0:
		case known && gone:
			m.MediaName.Port.Value = 0
			out[mid] = true
		case !known && sendsNothing(m):
			out[mid] = true
			continue
		}
		kept = append(kept, m)
	}
	if len(out) == 0 {
		return offer, nil
	}
	o.MediaDescriptions = kept
	for i, a := range o.Attributes {
		if a.Key != sdp.AttrKeyGroup || !strings.HasPrefix(a.Value, "BUNDLE") {
			continue
		}
		tags := slices.DeleteFunc(strings.Fields(a.Value)[1:], func(mid string) bool { return out[mid] })
		o.Attributes[i].Value = strings.Join(append([]string{"BUNDLE"}, tags...), " ")
	}
	b, err := o.Marshal()
	if err != nil {
		return "", fmt.Errorf("node's offer: %w", err)
	}
	return string(b), nil
}

// sendsNothing reports whether m is an audio or video section offered
// inactive.
func sendsNothing(m *sdp.MediaDescription) bool {
	if k := m.MediaName.Media; k != "audio" && k != "video" {
		return false
	}
	_, inactive := m.Attribute(sdp.AttrKeyInactive)
	return inactive
}
