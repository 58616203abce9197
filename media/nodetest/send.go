package nodetest

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Send sends what p publishes until stop is closed: video packets every
// 10 ms (three to a frame, a keyframe first and whenever the node asks),
// and an audio packet every 20 ms.
func (p *Participant) Send(stop <-chan struct{}, wg *sync.WaitGroup) {
	for i := range p.wantKF {
		p.wantKF[i].Store(true)
	}
	if p.vsend != nil {
		// The RTCP readers end when the connection closes, at the end of
		// the test, after stop.
		if p.pub.Simulcast {
			for i, rid := range Rids {
				go p.readRTCP(func() ([]rtcp.Packet, error) { pk, _, err := p.vsend.ReadSimulcastRTCP(rid); return pk, err }, i)
			}
		} else {
			go p.readRTCP(func() ([]rtcp.Packet, error) { pk, _, err := p.vsend.ReadRTCP(); return pk, err }, 0)
		}
		wg.Go(func() { p.sendVideo(stop) })
	}
	if p.screen != nil {
		go p.readRTCP(func() ([]rtcp.Packet, error) { pk, _, err := p.ssend.ReadRTCP(); return pk, err }, 3)
		wg.Go(func() { p.sendScreen(stop) })
	}
	if p.audio != nil {
		wg.Go(func() { p.sendAudio(stop) })
	}
}

func (p *Participant) readRTCP(read func() ([]rtcp.Packet, error), layer int) {
	for {
		pkts, err := read()
		if err != nil {
			return
		}
		for _, pk := range pkts {
			switch pk := pk.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.plis.Add(1)
				p.wantKF[layer].Store(true)
			case *rtcp.ReceiverReport:
				p.noteReports(pk.Reports)
			case *rtcp.SenderReport:
				p.noteReports(pk.Reports)
			case *rtcp.TransportLayerNack:
				p.mu.Lock()
				for _, pair := range pk.Nacks {
					for _, seq := range pair.PacketList() {
						p.nacked[seq] = true
					}
				}
				p.mu.Unlock()
			}
		}
	}
}

// noteReports counts the node's reception reports that answer one of p's
// sender reports: with them a sender computes its round-trip time.
func (p *Participant) noteReports(rs []rtcp.ReceptionReport) {
	for _, r := range rs {
		if r.LastSenderReport != 0 && r.Delay != 0 {
			p.rtts.Add(1)
		}
	}
}

func (p *Participant) sendVideo(stop <-chan struct{}) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	sizes := []int{600}
	if p.pub.Simulcast {
		sizes = []int{150, 400, 1000}
	}
	var midID, ridID uint8
	mid := ""
	key := make([]bool, len(p.video))
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if p.pub.Simulcast && ridID == 0 {
			for _, e := range p.vsend.GetParameters().HeaderExtensions {
				switch e.URI {
				case sdp.SDESMidURI:
					midID = uint8(e.ID)
				case sdp.SDESRTPStreamIDURI:
					ridID = uint8(e.ID)
				}
			}
			for _, tr := range p.pc.GetTransceivers() {
				if tr.Sender() == p.vsend {
					mid = tr.Mid()
				}
			}
			if ridID == 0 || mid == "" {
				continue
			}
		}
		first := n%3 == 0
		if int32(n&0xffff) == p.skip.Load() {
			p.sent.Add(1)
			continue // lost on the way, as far as the node can tell
		}
		for i, tr := range p.video {
			if first {
				key[i] = p.wantKF[i].Swap(false)
			}
			payload := make([]byte, sizes[i])
			// Simulcast layers carry an extended descriptor with a 15-bit
			// picture ID, each layer numbering its own, as browsers do.
			d := 0
			if p.pub.Simulcast {
				pic := (picBase[i] + n/3) & 0x7fff
				payload[0], payload[1], payload[2], payload[3] = 0x80, 0x80, 0x80|byte(pic>>8), byte(pic)
				d = 3 // the VP8 header follows at d+1
			}
			payload[d+1] = 0x01 // interframe
			if first {
				payload[0] |= 0x10 // S: start of a frame
				if key[i] {
					payload[d+1] = 0x00
				}
			}
			if p.pub.Simulcast {
				payload[d+2] = Rids[i][0]
			}
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(n), Timestamp: uint32(n/3) * 3000, Marker: n%3 == 2}, Payload: payload}
			if p.pub.Simulcast {
				_ = pkt.Header.SetExtension(midID, []byte(mid))
				_ = pkt.Header.SetExtension(ridID, []byte(Rids[i]))
			}
			if err := tr.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				return
			}
		}
		p.sent.Add(1)
	}
}

// sendScreen sends a screen share: a frame of three packets every 30 ms,
// a keyframe first and whenever the node asks.
func (p *Participant) sendScreen(stop <-chan struct{}) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	key := false
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		payload := make([]byte, 800)
		payload[1], payload[2] = 0x01, 's'
		if n%3 == 0 {
			key = p.wantKF[3].Swap(false)
			payload[0] = 0x10
			if key {
				payload[1] = 0x00
			}
		}
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(n), Timestamp: uint32(n/3) * 3000, Marker: n%3 == 2}, Payload: payload}
		if err := p.screen.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return
		}
	}
}

// SkipVideo makes p leave out camera packet seq (of every layer), as if
// the network had lost it on the way to the node.
func (p *Participant) SkipVideo(seq uint16) { p.skip.Store(int32(seq)) }

// Nacked reports whether the node asked p again for camera packet seq.
func (p *Participant) Nacked(seq uint16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nacked[seq]
}

func (p *Participant) sendAudio(stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var levelID uint8
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if levelID == 0 {
			for _, e := range p.asend.GetParameters().HeaderExtensions {
				if e.URI == sdp.AudioLevelURI {
					levelID = uint8(e.ID)
				}
			}
		}
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(n), Timestamp: uint32(n) * 960}, Payload: make([]byte, 80)}
		if levelID != 0 {
			ext, _ := rtp.AudioLevelExtension{Level: uint8(p.level.Load()), Voice: p.level.Load() < 127}.Marshal()
			_ = pkt.Header.SetExtension(levelID, ext)
		}
		if err := p.audio.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return
		}
	}
}

// WriteVideo sends camera packet n at once, outside Send's pace, for
// benchmarks; a keyframe every 90 packets. p must publish one camera
// track without simulcast.
func (p *Participant) WriteVideo(n uint16, payload []byte) error {
	payload[0], payload[1] = 0x00, 0x01
	if n%3 == 0 {
		payload[0] = 0x10
		if n%90 == 0 {
			payload[1] = 0x00
		}
	}
	return p.video[0].WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: n,
		Timestamp: uint32(n/3) * 3000, Marker: n%3 == 2}, Payload: payload})
}
