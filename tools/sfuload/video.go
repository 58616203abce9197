package main

import (
	"errors"
	"io"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// layerPlan is how one video layer is cut into packets at frameRate.
type layerPlan struct {
	packets int // per frame
	size    int // payload bytes per packet
}

// planLayer spreads a layer's bitrate over frames and packets of at most
// maxVideoPayload bytes, never below the smallest valid payload.
func planLayer(kbps int) layerPlan {
	perFrame := kbps * 1000 / 8 / frameRate
	n := max(1, (perFrame+maxVideoPayload-1)/maxVideoPayload)
	return layerPlan{packets: n, size: max(minVP8Payload, perFrame/n)}
}

// videoLayer is the sending state of one simulcast encoding.
type videoLayer struct {
	plan      layerPlan
	pkt       rtp.Packet
	buf       []byte
	seq       uint32 // the stamp's sequence, gap-free
	pictureID uint16
	lastKey   time.Duration
}

// sendVideo writes every layer's frames at frameRate from one goroutine,
// with a keyframe every keyframeInterval or when a layer's subscriber
// reported picture loss. The packets carry the mid and rid header
// extensions, by which the node tells the simulcast layers apart.
func (p *peer) sendVideo() {
	ids := extensionIDs(p.videoSender)
	mid := p.mid(p.videoSender)
	layers := make([]*videoLayer, len(p.video))
	for i, t := range p.video {
		kbps := p.cfg.layers[len(p.cfg.layers)-1].kbps
		if p.cfg.simulcast {
			kbps = p.cfg.layers[i].kbps
		}
		l := &videoLayer{plan: planLayer(kbps), lastKey: -keyframeInterval}
		l.buf = make([]byte, l.plan.size)
		l.pkt.Header.Version = 2
		if id := ids[sdp.SDESMidURI]; id != 0 && mid != "" {
			_ = l.pkt.Header.SetExtension(id, []byte(mid))
		}
		if id := ids[sdp.SDESRTPStreamIDURI]; id != 0 && t.RID() != "" {
			_ = l.pkt.Header.SetExtension(id, []byte(t.RID()))
		}
		layers[i] = l
	}
	tick := time.NewTicker(time.Second / frameRate)
	defer tick.Stop()
	for frame := uint32(0); ; frame++ {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
		for i, l := range layers {
			now := p.since()
			key := p.keyWanted[i].Swap(false) || now-l.lastKey >= keyframeInterval
			if key {
				l.lastKey = now
			}
			for j := range l.plan.packets {
				sent := int64(p.since())
				s := stamp{Publisher: p.cfg.index, Stream: uint8(i), Keyframe: key && j == 0, Start: j == 0, Seq: l.seq, SentNanos: sent}
				l.pkt.Payload = encodeVP8(l.buf, l.pictureID, s)
				l.pkt.SequenceNumber = uint16(l.seq)
				l.pkt.Timestamp = frame * (90000 / frameRate)
				l.pkt.Marker = j == l.plan.packets-1
				if err := p.video[i].WriteRTP(&l.pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
					return
				}
				l.seq++
				if p.cfg.win.contains(sent) {
					p.sent.Add(1)
				}
			}
			l.pictureID = (l.pictureID + 1) & 0x7fff
		}
	}
}
