package media

// VP8 picture ID and TL0PICIDX continuity. Each simulcast layer is its own
// encoder with its own picture ID and TL0PICIDX sequences (RFC 7741 §4.2);
// a receiver that sees them jump backwards at a layer switch may take the
// new layer's frames for old ones and drop them. So for a VP8 simulcast
// track each subscriber gets them rewritten, like sequence numbers, into
// one continuous sequence. The shared packet is never modified: the
// descriptor is rewritten in the subscriber's own copy.

// vp8Descriptor locates the picture ID and TL0PICIDX in a VP8 payload
// descriptor; an offset of 0 means the field is absent.
type vp8Descriptor struct {
	picAt, tl0At int
	wide         bool // 15-bit picture ID
}

func parseVP8(b []byte) (d vp8Descriptor, ok bool) {
	if len(b) < 1 || b[0]&0x80 == 0 {
		return d, len(b) > 0
	}
	if len(b) < 2 {
		return d, false
	}
	i := 2
	if b[1]&0x80 != 0 { // I
		if len(b) <= i {
			return d, false
		}
		d.picAt, d.wide = i, b[i]&0x80 != 0
		i++
		if d.wide {
			i++
		}
	}
	if b[1]&0x40 != 0 { // L
		d.tl0At = i
		i++
	}
	return d, len(b) > i
}

func (d vp8Descriptor) pic(b []byte) uint16 {
	if d.wide {
		return uint16(b[d.picAt]&0x7f)<<8 | uint16(b[d.picAt+1])
	}
	return uint16(b[d.picAt] & 0x7f)
}

func (d vp8Descriptor) setPic(b []byte, v uint16) {
	if d.wide {
		b[d.picAt] = 0x80 | byte(v>>8)&0x7f
		b[d.picAt+1] = byte(v)
		return
	}
	b[d.picAt] = byte(v) & 0x7f
}

// vp8Rewriter is writer-owned state of one subscriber's VP8 track.
type vp8Rewriter struct {
	started            bool
	picOffset, lastPic uint16 // 15-bit arithmetic
	tl0Offset, lastTL0 uint8
	scratch            []byte
}

// rewrite returns payload with the picture ID and TL0PICIDX mapped; with
// resync, the packet starts a new mapping that follows the last one sent.
// It returns payload itself when there is nothing to rewrite.
func (r *vp8Rewriter) rewrite(payload []byte, resync bool) []byte {
	d, ok := parseVP8(payload)
	if !ok || (d.picAt == 0 && d.tl0At == 0) {
		return payload
	}
	mask := uint16(0x7fff)
	if !d.wide {
		mask = 0x7f
	}
	switch {
	case !r.started:
		r.started, r.picOffset, r.tl0Offset = true, 0, 0
		if d.picAt != 0 {
			r.lastPic = (d.pic(payload) - 1) & 0x7fff
		}
		if d.tl0At != 0 {
			r.lastTL0 = payload[d.tl0At] - 1
		}
	case resync:
		if d.picAt != 0 {
			r.picOffset = (d.pic(payload) - (r.lastPic + 1)) & 0x7fff
		}
		if d.tl0At != 0 {
			r.tl0Offset = payload[d.tl0At] - (r.lastTL0 + 1)
		}
	}
	if cap(r.scratch) < len(payload) {
		r.scratch = make([]byte, max(maxPacket, len(payload))) // once per subscriber track
	}
	out := r.scratch[:len(payload)]
	copy(out, payload)
	if d.picAt != 0 {
		pic := (d.pic(payload) - r.picOffset) & mask
		d.setPic(out, pic)
		if int16((pic-r.lastPic)<<1) > 0 { // newer, in 15 bits
			r.lastPic = pic
		}
	}
	if d.tl0At != 0 {
		tl0 := payload[d.tl0At] - r.tl0Offset
		out[d.tl0At] = tl0
		if int8(tl0-r.lastTL0) > 0 {
			r.lastTL0 = tl0
		}
	}
	return out
}
