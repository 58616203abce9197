// The connection to the media server (SFU) a consult of three or more
// uses: one RTCPeerConnection that publishes this tab's microphone and
// camera and receives every other member's media. The server renegotiates
// when members come and go; this side yields on glare. The server names
// each stream it forwards "{member id}/{stream id}".

// Send the camera in three layers so the server can forward to each
// member the one that fits its screen and bandwidth.
const cameraLayers = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", maxBitrate: 1_200_000 },
];

export class MediaServerLink {
  // config: RTCConfiguration; local: the tab's MediaStream; screen: the
  // shared screen track or null; send: sends a signaling message;
  // onMedia(member, stream): called once a member's media flows through
  // the server, when the direct connection to it can close.
  constructor({ config, local, screen, send, onMedia, simulcast = true }) {
    this.pc = new RTCPeerConnection(config);
    this.sendMsg = send;
    this.onMedia = onMedia;
    this.streams = new Map(); // member id -> MediaStream arriving from the server
    this.sizes = new Map(); // member id -> size last reported
    this.senders = new Map(); // kind -> RTCRtpSender
    this.makingOffer = false;
    this.closed = false;
    const pc = this.pc;

    for (const t of local.getTracks()) {
      const track = t.kind === "video" && screen ? screen : t;
      const init = { direction: "sendrecv", streams: [local] };
      if (t.kind === "video" && simulcast) {
        init.sendEncodings = cameraLayers.map((l, i) => ({ ...l, active: !screen || i === cameraLayers.length - 1 }));
      }
      this.senders.set(t.kind, pc.addTransceiver(track, init).sender);
    }
    if (local.getTracks().length === 0) pc.addTransceiver("audio", { direction: "recvonly" });

    pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        send({ type: "offer", to: "sfu", sdp: pc.localDescription.sdp });
      } catch (err) {
        console.warn("media server negotiation", err);
      } finally {
        this.makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => {
      if (candidate && candidate.candidate) send({ type: "candidate", to: "sfu", candidate: candidate.toJSON() });
    };
    pc.ontrack = ({ track, streams }) => {
      const stream = streams[0];
      if (!stream) return;
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
      if (pc.iceConnectionState === "failed") pc.restartIce();
    };
    // Sent before the offer that onnegotiationneeded produces.
    send({ type: "sfu-join" });
  }

  // description applies an offer or answer from the server; the server's
  // offer wins over one of ours in flight (the browser rolls ours back).
  async description(d) {
    if (this.closed) return;
    try {
      await this.pc.setRemoteDescription(d);
      if (d.type === "offer") {
        await this.pc.setLocalDescription();
        this.sendMsg({ type: "answer", to: "sfu", sdp: this.pc.localDescription.sdp });
      }
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
    const params = sender.getParameters();
    if (kind !== "video" || !params.encodings || params.encodings.length < 2) return;
    params.encodings.forEach((e, i) => { e.active = !screen || i === params.encodings.length - 1; });
    await sender.setParameters(params).catch((err) => console.warn("layers", err));
  }

  // view reports the size at which member's video is shown, rounded so
  // that small layout changes send nothing.
  view(member, width, height) {
    if (this.closed) return;
    const w = Math.round(width / 16) * 16;
    const h = Math.round(height / 16) * 16;
    const key = `${w}x${h}`;
    if (this.sizes.get(member) === key || !this.streams.has(member)) return;
    this.sizes.set(member, key);
    this.sendMsg({ type: "view", member, width: w, height: h });
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
