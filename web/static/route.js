// Where media goes: direct connections between members (peers.js), or one
// connection to the media server (sfu.js), and the moves between the two.
import { state, send } from "./callstate.js";
import { MediaServerLink } from "./sfu.js";
import { tile, viewAll, viewOne } from "./tiles.js";
import { dropPeerConnection, peerConfig, resync } from "./peers.js";
import { renderRoster } from "./roster.js";

// toMediaServer opens (or reopens) the connection to the media server. The
// direct connections stay until each member's media arrives through it.
export function toMediaServer() {
  state.route = "sfu";
  state.sfu?.close();
  state.sfu = new MediaServerLink({
    config: peerConfig(),
    local: state.local,
    screen: state.screen,
    ownCamera: state.ownCamera,
    send,
    others: [...state.roster.keys()].filter((id) => id !== state.me).length,
    onMedia(member, stream) {
      const info = state.roster.get(member);
      if (!info || member === state.me || state.route !== "sfu") return;
      tile(member, info.name, stream, false);
      dropPeerConnection(member);
      viewOne(member);
    },
  });
  // A join the server refused (too soon after the last) or an answer lost
  // on the way: start over rather than wait forever.
  const link = state.sfu;
  setTimeout(() => {
    if (state.sfu === link && !state.over && !link.pc.remoteDescription) toMediaServer();
  }, 5000);
}

// fromMediaServer goes back to direct connections when the consult has
// shrunk: they open as on arrival, each tile keeps the server's picture
// until its direct one has a frame, and the server connection closes when
// every member's media arrives directly. Until then, or if a direct
// connection never comes up, the server's media keeps flowing.
export function fromMediaServer() {
  state.route = "p2p";
  renderRoster([...state.roster.values()]);
  // A member who sends nothing (no camera, no microphone) never produces a
  // track; a connected direct connection has to do.
  const link = state.sfu;
  setTimeout(() => {
    if (state.sfu !== link || state.route !== "p2p") return;
    for (const p of state.peers.values()) if (p.pc.connectionState === "connected") p.direct = true;
    leaveMediaServerWhenDirect();
  }, 15000);
}

export function leaveMediaServerWhenDirect() {
  if (state.route !== "p2p" || !state.sfu) return;
  for (const id of state.roster.keys()) {
    if (id !== state.me && !state.peers.get(id)?.direct) return;
  }
  state.sfu.close();
  state.sfu = null;
  send({ type: "sfu-leave" });
}

// backToPeers keeps a member whom no media server could take on direct
// connections with everyone.
export function backToPeers() {
  state.route = "p2p";
  state.sfu?.close();
  state.sfu = null;
  renderRoster([...state.roster.values()]);
}

// onRoute follows the server's move of the consult.
export function onRoute(m) {
  if (m.route === "p2p") {
    if (state.route === "sfu") fromMediaServer();
    return;
  }
  // A move back to direct connections in progress starts over on the
  // server, which closes them as its media arrives.
  if (m.restart || !state.sfu || state.route !== "sfu") toMediaServer();
}

// admittedRoute takes up the route an admission (first or on a
// reconnection) names. again says the tab was admitted before this
// connection: its connections are kept, and renegotiated where something
// was lost while the socket was down. A room that started over (its
// server restarted, or another replica took the consult) has no media
// server session for the tab and may have moved back to direct
// connections.
export function admittedRoute(m, again) {
  if (m.route === "sfu") {
    state.route = "sfu";
    if (!state.sfu || state.sfu.failed() || (again && !m.node)) toMediaServer();
    else if (again) state.sfu.resync();
    return;
  }
  if (state.route === "sfu") {
    fromMediaServer();
    return;
  }
  if (!again) return;
  for (const p of state.peers.values()) if (state.roster.has(p.id)) resync(p);
}

// onUndeliveredToServer handles the server's refusal of a message to the
// media server: the tab has no session there (the room started over), so
// it joins again.
export function onUndeliveredToServer(ref) {
  if (!state.sfu?.sent(ref)) return false;
  // A join refused as too soon after the last is retried by its timer.
  if (state.route === "sfu" && state.sfu.age() > 2000) toMediaServer();
  return true;
}

// A hidden page shows no video: the media server pauses it (a 0x0 view,
// as for a hidden tile) and resumes it at a keyframe when the page is
// shown again, which saves a phone's data and battery in the background.
document.addEventListener("visibilitychange", () => {
  if (state.sfu) viewAll(document.visibilityState === "hidden");
});
