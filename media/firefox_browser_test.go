package media_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/firefoxtest"
	"github.com/openconsult/openconsult/media"
)

// firefoxPage holds members without a camera, each a peer connection of
// its own: its video a canvas that changes colour every frame, its audio
// an oscillator, and a receive-only video section; the page answers what
// the node offers each.
const firefoxPage = `<!doctype html><title>members</title><script>
const canvas = Object.assign(document.createElement("canvas"), {width: 320, height: 240});
const g = canvas.getContext("2d");
let n = 0;
setInterval(() => { g.fillStyle = "hsl(" + (n++ * 7 % 360) + ",80%,50%)"; g.fillRect(0, 0, 320, 240); g.fillStyle = "#000"; g.fillText(String(n), 10, 20); }, 33);
const stream = canvas.captureStream(30);
const ac = new AudioContext();
const osc = ac.createOscillator();
const dst = ac.createMediaStreamDestination();
osc.connect(dst);
osc.start();
stream.addTrack(dst.stream.getAudioTracks()[0]);
const peers = {};
window.makeOffer = async (name) => {
  const pc = peers[name] = new RTCPeerConnection();
  for (const t of stream.getTracks()) pc.addTrack(t, stream);
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.ontrack = (e) => {
    if (e.track.kind !== "video") return;
    const v = Object.assign(document.createElement("video"), {autoplay: true, muted: true, srcObject: new MediaStream([e.track])});
    document.body.append(v);
  };
  await pc.setLocalDescription();
  return pc.localDescription.sdp;
};
window.takeAnswer = async (name, sdp) => { await peers[name].setRemoteDescription({type: "answer", sdp}); return true; };
window.takeOffer = async (name, sdp) => {
  const pc = peers[name];
  await pc.setRemoteDescription({type: "offer", sdp});
  await pc.setLocalDescription();
  return pc.localDescription.sdp;
};
window.decoded = async (name) => {
  let frames = 0;
  for (const s of (await peers[name].getStats()).values()) if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
  return frames;
};
window.stopped = async (name) => peers[name].getTransceivers().filter((t) => t.currentDirection === "stopped" || t.stopped).length;
window.state = async (name) => {
  const pc = peers[name];
  let out = pc.connectionState + "/" + pc.iceConnectionState + "/" + pc.signalingState;
  for (const s of (await pc.getStats()).values()) {
    if (s.type === "inbound-rtp") out += "; in " + s.kind + ": " + s.packetsReceived + " packets, " + (s.framesDecoded || 0) + " frames";
    if (s.type === "outbound-rtp") out += "; out " + s.kind + ": " + s.packetsSent + " packets";
  }
  return out;
};
</script>`

// firefoxMember is one of the page's peer connections joined to the
// node; it passes the node's descriptions to the page, in order, on a
// goroutine of its own, as signaling would.
type firefoxMember struct {
	t    *testing.T
	ff   *firefoxtest.Firefox
	name string
	sess media.Participant
	todo chan func(context.Context) error
}

// js calls a function of the page's with the member's name first.
func (m *firefoxMember) js(fn string, args ...string) string {
	call := fn + "(" + strconv.Quote(m.name)
	for _, a := range args {
		call += ", " + strconv.Quote(a)
	}
	return call + ")"
}

func (m *firefoxMember) Answer(sdp string) {
	m.todo <- func(ctx context.Context) error { return m.ff.Eval(ctx, m.js("takeAnswer", sdp), nil) }
}

func (m *firefoxMember) Offer(sdp string) {
	m.todo <- func(ctx context.Context) error {
		var answer string
		if err := m.ff.Eval(ctx, m.js("takeOffer", sdp), &answer); err != nil {
			return err
		}
		return m.sess.Answer(answer)
	}
}

func (m *firefoxMember) Speaker(string) {}

func (m *firefoxMember) Closed(err error) {
	if !errors.Is(err, media.ErrShutdown) {
		m.t.Errorf("the node closed %s's session: %v", m.name, err)
	}
}

func (m *firefoxMember) run(ctx context.Context) {
	for {
		select {
		case f := <-m.todo:
			c, cancel := context.WithTimeout(ctx, 20*time.Second)
			if err := f(c); err != nil && ctx.Err() == nil {
				m.t.Errorf("%s: %v", m.name, err)
			}
			cancel()
		case <-ctx.Done():
			return
		}
	}
}

// join joins the member to the node's room with the page's offer.
func (m *firefoxMember) join(ctx context.Context, node media.Node) {
	m.t.Helper()
	sess, err := node.Join(ctx, "c_1", m.name, m)
	if err != nil {
		m.t.Fatal(err)
	}
	m.sess = sess
	go m.run(ctx)
	var offer string
	if err := m.ff.Eval(ctx, m.js("makeOffer"), &offer); err != nil {
		m.t.Fatal(err)
	}
	if err := sess.Offer(offer); err != nil {
		m.t.Fatalf("the node refused %s's offer: %v\n%s", m.name, err, offer)
	}
}

// TestBrowserFirefoxOnTheOwnTransport: two members in Firefox ESR, each
// a peer connection of its own, hold a consult through the node's own
// transport: Firefox applies the node's answers (media/sdpneg; its
// balanced BUNDLE policy writes a second video section as bundle-only,
// port 0) and the node's later offers, checks the node's candidates on
// every address of the host's, and ICE-lite, DTLS and SRTP come up with
// Firefox's own stacks; each member decodes the other's canvas video,
// encoded and decoded by Firefox.
func TestBrowserFirefoxOnTheOwnTransport(t *testing.T) {
	// Every address of the host's: Firefox does not check a loopback
	// candidate.
	firefoxConsult(t, media.Config{UDPListen: ":0", OwnTransport: true})
}

// TestBrowserFirefoxOnPion: the same consult on pion's transport, a port
// per participant, as signal's embedded node runs by default.
func TestBrowserFirefoxOnPion(t *testing.T) {
	firefoxConsult(t, media.Config{})
}

func firefoxConsult(t *testing.T, cfg media.Config) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, firefoxPage)
	}))
	defer srv.Close()
	ff := firefoxtest.New(t, srv.URL)
	cfg.Log = testLog()
	sfu := newSFU(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var members []*firefoxMember
	for _, name := range []string{"ff1", "ff2"} {
		m := &firefoxMember{t: t, ff: ff, name: name, todo: make(chan func(context.Context) error, 16)}
		m.join(ctx, sfu)
		members = append(members, m)
	}
	for _, m := range members {
		deadline := time.Now().Add(30 * time.Second)
		for {
			var frames int
			if err := ff.Eval(ctx, m.js("decoded"), &frames); err == nil && frames > 30 {
				break
			}
			if time.Now().After(deadline) {
				var state string
				_ = ff.Eval(ctx, m.js("state"), &state)
				t.Fatalf("%s decodes no video from the other within 30s: %s", m.name, state)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The receive-only section, bundle-only in Firefox's offer, was
		// taken, not rejected.
		var stopped int
		if err := ff.Eval(ctx, m.js("stopped"), &stopped); err != nil || stopped != 0 {
			t.Errorf("%s: %d sections stopped (%v), want none", m.name, stopped, err)
		}
	}
}
