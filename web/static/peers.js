// One RTCPeerConnection per other member, with perfect negotiation: the
// member whose id sorts first is polite and yields on glare, so either side
// may renegotiate at any time (screen sharing, a device change, an ICE
// restart). A connection outlives a signaling reconnection; what could not
// be sent while the socket was down, an offer left unanswered and a path
// that stays down for a while are all mended by an ICE restart.
import { state, send } from "./callstate.js";
import { firstFrame } from "./sfu.js";
import { tile, removeTile } from "./tiles.js";
import { leaveMediaServerWhenDirect } from "./route.js";

// stallMs is how long an offer may go unanswered, or a path stay
// disconnected, before an ICE restart; restarts of a pair that does not
// come up are spaced out up to eight times as much.
const stallMs = 5000;

// refs maps the id of a negotiation message sent to a member to that
// member, so that the server's refusal to deliver it marks the pair.
const refs = new Map();

export function peerConfig() {
  return { iceServers: state.iceServers, iceTransportPolicy: state.policy };
}

export function peer(id) {
  return state.peers.get(id) || newPeer(id);
}

function newPeer(id) {
  const pc = new RTCPeerConnection(peerConfig());
  // The member with the smaller id yields on glare.
  const p = {
    id, pc, polite: state.me < id, makingOffer: false, ignoreOffer: false,
    lost: false, // a message to the member was lost: renegotiate
    offeredAt: 0, negotiatedAt: Date.now(), downSince: 0, restartedAt: 0, restarts: 0,
  };
  state.peers.set(id, p);
  for (const t of state.local.getTracks()) pc.addTrack(t.kind === "video" && state.screen ? state.screen : t, state.local);
  if (state.local.getAudioTracks().length === 0) pc.addTransceiver("audio", { direction: "recvonly" });
  // Without a camera, a screen being shared goes in the video section.
  if (state.local.getVideoTracks().length === 0) {
    if (state.screen) pc.addTrack(state.screen, state.local);
    else pc.addTransceiver("video", { direction: "recvonly" });
  }

  pc.onnegotiationneeded = async () => {
    try {
      p.makingOffer = true;
      await pc.setLocalDescription();
      p.offeredAt = p.negotiatedAt = Date.now();
      signal(p, { type: "offer", to: id, sdp: pc.localDescription.sdp });
    } catch (err) {
      console.warn("negotiation", err);
    } finally {
      p.makingOffer = false;
    }
  };
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) signal(p, { type: "candidate", to: id, candidate: candidate.toJSON() });
  };
  pc.ontrack = ({ streams }) => onTrack(p, streams[0] || new MediaStream());
  pc.oniceconnectionstatechange = () => {
    // A network change (Wi-Fi to mobile data) fails the old path; an ICE
    // restart finds a new one without hanging up.
    const s = pc.iceConnectionState;
    if (s === "connected" || s === "completed") {
      p.downSince = 0;
      p.restarts = 0;
    } else if (s === "disconnected") {
      p.downSince ||= Date.now();
    } else if (s === "failed") {
      if (state.route === "sfu" && state.sfu?.receiving(id)) dropPeerConnection(id);
      else restart(p);
    }
  };
  return p;
}

// signal sends a negotiation message to p's member. One that cannot be
// sent (the signaling socket is down) is not silently lost: the pair is
// renegotiated once the socket is back. An offer or answer the server
// refused as busy is sent again while it is still the pair's latest
// description (see busy.js), or the pair renegotiates.
function signal(p, msg) {
  const again = msg.sdp && ((exhausted) => {
    if (state.peers.get(p.id) !== p || p.pc.localDescription?.sdp !== msg.sdp) return;
    if (exhausted) p.lost = true;
    else signal(p, msg);
  });
  const ref = send(msg, again);
  if (!ref) {
    p.lost = true;
    return;
  }
  refs.set(ref, p.id);
  if (refs.size > 500) refs.delete(refs.keys().next().value);
}

// undelivered handles the server's refusal of a message (the member was not
// in the room, as while it reconnects): the pair renegotiates once the
// member is back. It reports whether the message was a peer's.
export function undelivered(ref) {
  const id = refs.get(ref);
  if (id === undefined) return false;
  refs.delete(ref);
  const p = state.peers.get(id);
  if (p) p.lost = true;
  return true;
}

function onTrack(p, stream) {
  const id = p.id;
  const info = state.roster.get(id);
  const name = info ? info.name : "";
  if (!state.sfu?.receiving(id)) {
    tile(id, name, stream, false);
    if (state.route === "p2p") {
      p.direct = true;
      leaveMediaServerWhenDirect();
    }
    return;
  }
  // Back from the media server: its picture stays until the direct one
  // has a frame, then the server connection goes once everyone is direct.
  if (p.direct !== undefined) return; // the stream's other track
  p.direct = false;
  firstFrame(stream).then(() => {
    if (state.peers.get(id) !== p || state.route !== "p2p") return;
    p.direct = true;
    tile(id, name, stream, false);
    leaveMediaServerWhenDirect();
  });
}

export async function onDescription(from, description) {
  // On the media server, a member whose media already arrives from it has
  // closed the direct connection; a late offer must not reopen it.
  if (state.route === "sfu" && !state.peers.has(from) && state.sfu?.receiving(from)) return;
  let p = peer(from);
  const collision = description.type === "offer" && (p.makingOffer || p.pc.signalingState !== "stable");
  p.ignoreOffer = !p.polite && collision;
  if (p.ignoreOffer) return;
  if (description.type === "answer" && p.pc.signalingState !== "have-local-offer") return; // an answer to an offer taken back
  try {
    await p.pc.setRemoteDescription(description);
  } catch (err) {
    // The member's page started over (a reload) with a connection that
    // does not match ours: start a fresh one too.
    console.warn("description", err);
    dropPeerConnection(from);
    p = peer(from);
    if (description.type !== "offer") return; // the fresh connection offers
    await p.pc.setRemoteDescription(description);
  }
  if (description.type === "offer") {
    await p.pc.setLocalDescription();
    p.negotiatedAt = Date.now();
    signal(p, { type: "answer", to: from, sdp: p.pc.localDescription.sdp });
  }
}

export async function onCandidate(from, candidate) {
  if (!state.peers.has(from) && state.route === "sfu") return;
  const p = peer(from);
  try {
    await p.pc.addIceCandidate(candidate);
  } catch (err) {
    if (!p.ignoreOffer) console.warn("candidate", err);
  }
}

// restart renegotiates the pair with an ICE restart, taking back an offer
// of ours that went unanswered; restarts of a pair that stays down are
// spaced out.
export async function restart(p) {
  const pc = p.pc;
  const now = Date.now();
  if (state.peers.get(p.id) !== p || pc.signalingState === "closed" || p.makingOffer) return;
  if (now - p.restartedAt < stallMs * 2 ** Math.min(p.restarts, 3)) return;
  p.restartedAt = now;
  p.restarts++;
  p.lost = false;
  if (pc.signalingState === "have-local-offer") {
    await pc.setLocalDescription({ type: "rollback" }).catch((err) => console.warn("rollback", err));
  }
  pc.restartIce(); // negotiationneeded sends an offer that restarts ICE
}

// resync renegotiates with p's member, after the signaling socket came
// back, unless the pair is connected with nothing lost or in flight.
export function resync(p) {
  const pc = p.pc;
  if (!p.lost && pc.signalingState === "stable" && pc.connectionState === "connected") return;
  p.restartedAt = 0;
  restart(p);
}

// tend restarts pairs whose offer went unanswered, whose path stayed down
// or failed or never came up after a negotiation (candidates lost), or to
// whose member a message was lost. While the socket is down nothing could
// be sent: the reconnection resyncs.
export function tend() {
  if (!state.admitted || state.wsDown || state.over) return;
  const now = Date.now();
  for (const p of state.peers.values()) {
    const pc = p.pc;
    const unanswered = pc.signalingState === "have-local-offer" && !p.makingOffer && now - p.offeredAt > stallMs;
    const down = p.downSince && now - p.downSince > stallMs;
    const failed = pc.connectionState === "failed" || pc.iceConnectionState === "failed";
    const stuck = (pc.connectionState === "new" || pc.connectionState === "connecting") && !!pc.remoteDescription && now - p.negotiatedAt > 3 * stallMs;
    if (!state.roster.has(p.id)) continue; // not back in the room yet
    if (unanswered || down || failed || stuck || p.lost) restart(p);
  }
}

// restartAll restarts ICE everywhere after a network change.
export function restartAll() {
  for (const p of state.peers.values()) {
    p.restartedAt = 0;
    restart(p);
  }
  state.sfu?.restart();
}

export function dropPeer(id) {
  dropPeerConnection(id);
  removeTile(id);
}

export function dropPeerConnection(id) {
  const p = state.peers.get(id);
  if (p) {
    p.pc.close();
    state.peers.delete(id);
  }
}
