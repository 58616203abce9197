package webm

import "encoding/binary"

// seekEntryLen is the size of one Seek entry: Seek, SeekID of a 4-byte
// ID, SeekPosition of 8 bytes.
const seekEntryLen = 3 + 7 + 11

// Header returns the file's first piece: the EBML header, the start of
// the Segment, its SeekHead, Info and Tracks. Every Header of a file has
// the same size. Before the file is finished (final false) the Segment's
// size is unknown and the duration and Cues are left out; once Cues was
// stored, Header(true) gives them.
func (m *Muxer) Header(final bool) []byte {
	final = final && m.final
	info := m.info(final)
	tracks := m.tracksElem()
	seekLen := 4 + 1 + 3*seekEntryLen
	infoAt := int64(seekLen)
	tracksAt := infoAt + int64(len(info))

	var seek []byte
	seek = appendSeek(seek, idInfo, infoAt)
	seek = appendSeek(seek, idTracks, tracksAt)
	if final && m.cuesAt >= 0 {
		seek = appendSeek(seek, idCues, tracksAt+int64(len(tracks))+m.cuesAt)
	} else {
		seek = appendVoid(seek, seekEntryLen)
	}

	out := ebmlHeader(m.docType)
	out = appendID(out, idSegment)
	if final {
		out = appendSizeN(out, uint64(int64(seekLen+len(info)+len(tracks))+m.written), 8)
	} else {
		out = binary.BigEndian.AppendUint64(out, unknownSize)
	}
	out = appendElem(out, idSeekHead, seek)
	out = append(out, info...)
	return append(out, tracks...)
}

func appendSeek(b []byte, id uint32, pos int64) []byte {
	var e []byte
	e = appendElem(e, idSeekID, appendID(nil, id))
	e = appendUintN(e, idSeekPosition, uint64(pos), 8)
	return appendElem(b, idSeek, e)
}

func (m *Muxer) info(final bool) []byte {
	var b []byte
	b = appendUintN(b, idTimecodeScale, 1_000_000, 3) // milliseconds
	if final {
		b = appendFloat(b, idDuration, float64(m.endT))
	} else {
		b = appendVoid(b, 11)
	}
	b = appendString(b, idMuxingApp, "openconsult")
	b = appendString(b, idWritingApp, "openconsult")
	return appendElem(nil, idInfo, b)
}

func (m *Muxer) tracksElem() []byte {
	var b []byte
	for i, t := range m.tracks {
		var e []byte
		e = appendUint(e, idTrackNumber, uint64(i+1))
		e = appendUint(e, idTrackUID, uint64(i+1))
		e = appendUint(e, idTrackType, uint64(t.Kind))
		e = appendUint(e, idFlagLacing, 0)
		e = appendString(e, idCodecID, t.CodecID)
		switch t.Kind {
		case Audio:
			ch := min(max(t.Channels, 1), 2)
			rate := t.SampleRate
			if rate <= 0 {
				rate = 48000
			}
			e = appendElem(e, idCodecPrivate, opusHead(ch, rate))
			e = appendUint(e, idCodecDelay, 6_500_000) // 312 samples at 48 kHz, in ns
			e = appendUint(e, idSeekPreRoll, 80_000_000)
			var a []byte
			a = appendFloat(a, idSamplingFrequency, float64(rate))
			a = appendUint(a, idChannels, uint64(ch))
			e = appendElem(e, idAudio, a)
		case Video:
			if len(t.CodecPrivate) > 0 {
				e = appendElem(e, idCodecPrivate, t.CodecPrivate)
			}
			var v []byte
			v = appendUint(v, idPixelWidth, uint64(max(t.Width, 1)))
			v = appendUint(v, idPixelHeight, uint64(max(t.Height, 1)))
			e = appendElem(e, idVideo, v)
		}
		b = appendElem(b, idTrackEntry, e)
	}
	return appendElem(nil, idTracks, b)
}

// opusHead is the Opus identification header (RFC 7845, 5.1) that
// Matroska keeps as the track's CodecPrivate.
func opusHead(channels, rate int) []byte {
	b := []byte("OpusHead")
	b = append(b, 1, byte(channels))
	b = binary.LittleEndian.AppendUint16(b, 312) // pre-skip
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))
	b = binary.LittleEndian.AppendUint16(b, 0) // output gain
	return append(b, 0)                        // channel mapping family
}
