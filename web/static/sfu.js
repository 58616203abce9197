// The connection to the media server (SFU) a consult of three or more
// uses: one RTCPeerConnection that publishes this tab's microphone and
// camera and receives every other member's media. The server renegotiates
// when members come and go; this side is the polite one: when the server's
// offer crosses one of ours, ours is rolled back, the server's answered,
// and ours made again (the server refuses the one that crossed with
// bad-sdp, which is no news to the user). The server names
// each stream it forwards "{member id}/{stream id}". Like the direct
// connections, it outlives a signaling reconnection: what could not be
// sent meanwhile, an unanswered offer and a path down for a while are
// mended by an ICE restart.

// stallMs is how long an offer may go unanswered, or the path stay
// disconnected, before an ICE restart.
const stallMs = 5000;

// Send the camera in three layers so the server can forward to each
// member the one that fits its screen and bandwidth.
const cameraLayers = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", maxBitrate: 1_200_000 },
];

// spareMax bounds the receive-only sections offered for a kind the tab does
// not send (see the constructor): each stays in every offer this side
// makes (Chromium writes about 5 kB of SDP per video section in its own
// offers, and the server takes descriptions sized for 64 publishers), and
// publications beyond them come with the server's next offer.
const spareMax = 4;

export class MediaServerLink {
  // config: RTCConfiguration; local: the tab's MediaStream (a microphone
  // turned on during the call is in it and goes as one present at join);
  // screen: the shared screen track or null; ownCamera: the camera was
  // turned on during the call and goes, like a screen without a camera, on
  // a section of its own (see sendVideo); send: sends a signaling message;
  // onMedia(member, stream): called once a member's media flows through
  // the server, when the direct connection to it can close; others: how
  // many other members the consult has.
  constructor({ config, local, screen, ownCamera = false, send, onMedia, simulcast = true, others = 1 }) {
    this.pc = new RTCPeerConnection(config);
    this.local = local;
    this.sendMsg = send;
    this.simulcast = simulcast;
    this.onMedia = onMedia;
    this.streams = new Map(); // member id -> MediaStream arriving from the server
    this.sizes = new Map(); // member id -> size last reported
    this.senders = new Map(); // kind -> RTCRtpSender
    this.own = null; // the video section of its own of a tab that joined without camera
    this.makingOffer = false;
    this.offers = new Set(); // ids of our offers not answered yet
    this.crossed = new Set(); // ids of our offers that crossed one of the server's
    this.restarting = false; // an ICE restart is wanted until an offer of ours is answered
    this.closed = false;
    this.lost = false; // a message could not be sent: renegotiate
    this.refs = new Set(); // ids of the negotiation messages sent to the server
    this.openedAt = Date.now();
    this.offeredAt = 0;
    this.downSince = 0;
    this.restartedAt = 0;
    const pc = this.pc;

    for (const t of local.getTracks()) {
      if (t.kind === "video" && ownCamera) continue;
      const track = t.kind === "video" && screen ? screen : t;
      const init = { direction: "sendrecv", streams: [local] };
      if (t.kind === "video" && simulcast) init.sendEncodings = layers(!!screen);
      this.senders.set(t.kind, pc.addTransceiver(track, init).sender);
    }
    const own = screen || (ownCamera && local.getVideoTracks()[0]);
    if (own && !this.senders.has("video")) this.sendVideo(own, own === screen);
    // A kind the tab does not send is offered receive-only, a section for
    // each other member: the server answers this first offer with the
    // room's publications of that kind on them, so they flow without its
    // second offer and one more round trip. (A kind the tab sends comes
    // with the server's offer, on sections of their own.) A section left
    // over is answered with no track and stays unused. A screen shared or a
    // camera turned on by a tab that joined without one has a section of
    // its own (see sendVideo).
    const spare = Math.min(Math.max(others, 1), spareMax);
    for (const kind of ["audio", "video"]) {
      if (this.senders.has(kind)) continue;
      for (let i = 0; i < spare; i++) pc.addTransceiver(kind, { direction: "recvonly" });
    }

    pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        if (pc.signalingState !== "have-local-offer") return; // the server's offer came first
        this.offeredAt = Date.now();
        this.signal({ type: "offer", to: "sfu", sdp: pc.localDescription.sdp });
      } catch (err) {
        console.warn("media server negotiation", err);
      } finally {
        this.makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => {
      if (candidate && candidate.candidate) this.signal({ type: "candidate", to: "sfu", candidate: candidate.toJSON() });
    };
    pc.ontrack = ({ track, streams }) => {
      const stream = streams[0];
      if (!stream || !stream.id.includes("/")) return; // a spare section (no member's stream)
      const member = stream.id.split("/")[0];
      // The tile switches to the server's stream once it has a frame to
      // show, so the move from the direct connection shows no black; a
      // member without video switches once its sound had a moment.
      const ready = track.kind === "video" ? firstFrame(stream) : pause(1500);
      ready.then(() => {
        if (this.closed || this.streams.get(member) === stream) return;
        if (track.kind === "audio" && stream.getVideoTracks().length > 0) return; // the video decides
        this.streams.set(member, stream);
        this.onMedia(member, stream);
      });
    };
    pc.oniceconnectionstatechange = () => {
      const s = pc.iceConnectionState;
      if (s === "connected" || s === "completed") this.downSince = 0;
      else if (s === "disconnected") this.downSince ||= Date.now();
      else if (s === "failed") this.restart();
    };
    // Sent before the offer that onnegotiationneeded produces.
    this.signal({ type: "sfu-join" });
  }

  // signal sends a message to the server, noting one that could not be
  // sent, and the ids of those that were, and of our offers. An offer or
  // answer the server refused as busy is sent again while it is still our
  // latest description (see busy.js), or the connection renegotiates.
  signal(msg) {
    const again = msg.sdp && ((exhausted) => {
      if (this.closed || this.pc.localDescription?.sdp !== msg.sdp) return;
      if (exhausted) this.lost = true;
      else this.signal(msg);
    });
    const ref = this.sendMsg(msg, again);
    if (!ref) {
      this.lost = true;
      return null;
    }
    if (msg.type === "offer") {
      this.offers.add(ref);
      this.offeredAt = Date.now();
    }
    this.refs.add(ref);
    if (this.refs.size > 500) this.refs.delete(this.refs.values().next().value);
    return ref;
  }

  // takeBack notes that our unanswered offers were rolled back: the
  // server's refusal of one of them says nothing to the user.
  takeBack() {
    for (const ref of this.offers) this.crossed.add(ref);
    this.offers.clear();
    while (this.crossed.size > 50) this.crossed.delete(this.crossed.values().next().value);
  }

  // refused handles the server's refusal (code) of message ref and reports
  // whether it was one of this connection's offers, which the server
  // refuses (bad-sdp) when it crossed the server's own offer. Such a
  // refusal is silent: the crossing was or will be settled when the
  // server's offer arrives (see description). Only a refused offer that
  // no offer of the server crossed within a moment is reported (report);
  // tend then renegotiates it.
  refused(ref, code, report) {
    if (this.crossed.delete(ref)) return true;
    if (code !== "bad-sdp" || !this.offers.has(ref)) return false;
    setTimeout(() => {
      if (!this.crossed.delete(ref) && !this.closed) report();
    }, stallMs / 2);
    return true;
  }

  // sent reports whether the message with id ref was one of this
  // connection's negotiation messages.
  sent(ref) {
    return !!ref && this.refs.has(ref);
  }

  // age is how long ago the connection opened, in milliseconds.
  age() {
    return Date.now() - this.openedAt;
  }

  // restart renegotiates with an ICE restart, taking back an offer of
  // ours that went unanswered; at most once every few seconds.
  async restart() {
    const pc = this.pc;
    if (this.closed || this.makingOffer || Date.now() - this.restartedAt < stallMs) return;
    this.restartedAt = Date.now();
    this.lost = false;
    this.restarting = true;
    if (pc.signalingState === "have-local-offer") {
      this.takeBack();
      await pc.setLocalDescription({ type: "rollback" }).catch((err) => console.warn("rollback", err));
    }
    pc.restartIce();
  }

  // resync renegotiates after the signaling socket came back, unless the
  // connection is up with nothing lost or in flight.
  resync() {
    const pc = this.pc;
    if (!this.lost && pc.signalingState === "stable" && pc.connectionState === "connected") return;
    this.restartedAt = 0;
    this.restart();
  }

  // tend restarts a connection whose offer went unanswered, whose path
  // stayed down or failed, or that lost a message; the caller runs it
  // every few seconds while the signaling socket is up.
  tend() {
    const pc = this.pc;
    const now = Date.now();
    const unanswered = pc.signalingState === "have-local-offer" && !this.makingOffer && this.offeredAt && now - this.offeredAt > stallMs;
    const down = this.downSince && now - this.downSince > stallMs;
    if (unanswered || down || pc.connectionState === "failed" || this.lost) this.restart();
  }

  // description applies an offer or answer from the server. The server's
  // offer wins over one of ours in flight: setting it rolls ours back (the
  // server refuses ours, see refused); once the server's is answered, the
  // browser offers again what ours carried (negotiationneeded fires again
  // for a section or direction not negotiated yet; an ICE restart is asked
  // again).
  async description(d) {
    if (this.closed) return;
    const pc = this.pc;
    if (d.type === "answer" && pc.signalingState !== "have-local-offer") return; // an offer taken back
    const crossing = d.type === "offer" && (this.makingOffer || pc.signalingState !== "stable");
    try {
      await pc.setRemoteDescription(d);
      if (d.type === "answer") {
        this.offers.clear();
        this.restarting = false;
        return;
      }
      if (crossing || this.offers.size > 0) this.takeBack();
      await pc.setLocalDescription();
      this.signal({ type: "answer", to: "sfu", sdp: pc.localDescription.sdp });
      if (crossing && this.restarting) pc.restartIce();
    } catch (err) {
      console.warn("media server description", err);
    }
  }

  // replaceTrack sends track instead of the current one. A shared screen
  // goes in full resolution only: its text must stay readable, and the
  // server forwards the one layer that is active.
  async replaceTrack(kind, track, screen = false) {
    const sender = this.senders.get(kind);
    if (!sender) return;
    await sender.replaceTrack(track);
    if (kind === "video") await activate(sender, screen);
  }

  // sendAudio sends track as the tab's microphone. A tab that joined
  // without one turns it on during the call: like a camera turned on then
  // (see sendVideo), it goes on a send-only section of its own, added by a
  // renegotiation, which the server publishes as a new track; a device
  // change later replaces the track there. Muting only disables the
  // track, as for a microphone present at join, so the section stays.
  sendAudio(track) {
    if (this.closed) return;
    if (this.senders.has("audio")) return this.replaceTrack("audio", track);
    if (!track) return;
    const own = this.pc.addTransceiver(track, { direction: "sendonly", streams: [this.local] });
    this.senders.set("audio", own.sender);
  }

  // share sends the screen instead of the camera (see sendVideo).
  share(track) {
    return this.sendVideo(track, true);
  }

  // unshare sends the camera again after a share, or nothing without one.
  unshare(cam) {
    return this.sendVideo(cam);
  }

  // sendVideo sends track (the camera, the screen, or null for nothing) as
  // the tab's video. A tab that joined with a camera has the camera's
  // sender. One that joined without has a send-only section of its own
  // while it sends video, which the server publishes as a new track; the
  // screen or a camera turned on during the call go there, the camera in
  // its layers as at join, the screen in the top one. With nothing to
  // send the section is stopped: the server ends the publication and the
  // others' tiles lose the picture rather than keep its last frame. The
  // next camera or share gets a new section (the browser puts it in the
  // stopped one's place): one taken up again would resume its layers on
  // the streams the server already reported on, without the section and
  // layer ids the server tells layers apart by.
  async sendVideo(track, screen = false) {
    if (this.closed) return;
    if (this.senders.has("video")) return this.replaceTrack("video", track, screen);
    const own = this.own;
    if (own && track) {
      await own.sender.replaceTrack(track);
      return activate(own.sender, screen);
    }
    if (own) {
      own.stop();
      this.own = null;
    }
    if (!track) return;
    const init = { direction: "sendonly", streams: [this.local] };
    if (this.simulcast) init.sendEncodings = layers(screen);
    this.own = this.pc.addTransceiver(track, init);
  }

  // view reports the size at which member's video is shown, rounded so
  // that small layout changes send nothing.
  view(member, width, height) {
    if (this.closed) return;
    const w = Math.round(width / 16) * 16;
    const h = Math.round(height / 16) * 16;
    const key = `${w}x${h}`;
    if (this.sizes.get(member) === key || !this.streams.has(member)) return;
    // A view of a member not in the room is refused as no-member too,
    // which says nothing of this connection: its id is not kept.
    if (this.sendMsg({ type: "view", member, width: w, height: h })) this.sizes.set(member, key);
  }

  // receiving reports whether member's media arrives through the server.
  receiving(member) {
    return this.streams.has(member);
  }

  failed() {
    return ["failed", "closed"].includes(this.pc.connectionState);
  }

  close() {
    this.closed = true;
    this.pc.close();
  }
}

// layers returns the encodings of a camera's sender: the three layers of
// a camera, or the top one only of a screen (its text must stay readable).
function layers(screen) {
  return cameraLayers.map((l, i) => ({ ...l, active: !screen || i === cameraLayers.length - 1 }));
}

// activate turns the layers of a video sender on for a camera, or the top
// one only for a screen; a sender of one layer sends it whatever it is.
async function activate(sender, screen) {
  const params = sender.getParameters();
  if (!params.encodings || params.encodings.length < 2) return;
  params.encodings.forEach((e, i) => { e.active = !screen || i === params.encodings.length - 1; });
  await sender.setParameters(params).catch((err) => console.warn("layers", err));
}

// firstFrame resolves once stream has a decoded video frame, or after a few
// seconds whatever happens: a camera that is off must not hold the move.
export function firstFrame(stream) {
  return new Promise((resolve) => {
    const v = document.createElement("video");
    v.muted = true;
    v.playsInline = true;
    v.srcObject = stream;
    const done = () => {
      v.srcObject = null;
      resolve();
    };
    v.addEventListener("loadeddata", done, { once: true });
    v.play().catch(() => {});
    setTimeout(done, 5000);
  });
}

function pause(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
