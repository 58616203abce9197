// What the call page's modules share: the page's elements, the call's
// state and the signaling socket's send.
import { track } from "./busy.js";

export const root = document.getElementById("call");
export const consultId = root.dataset.consult;
export const isHost = root.dataset.host === "true";
export const audioOnly = new URLSearchParams(location.search).get("audio") === "only";

export const $ = (id) => document.getElementById(id);

export const state = {
  me: null,
  admitted: false,
  over: false,
  iceServers: [],
  policy: "all",
  roster: new Map(), // member id -> info, as the server last said
  peers: new Map(), // member id -> peer (peers.js)
  route: "p2p", // "p2p" or "sfu": where media goes
  sfu: null, // MediaServerLink while on the media server
  local: null, // MediaStream
  screen: null, // MediaStreamTrack while sharing
  // The camera was turned on during the call by a tab that joined without
  // one: it goes on a video section of its own (see sfu.js sendVideo), and
  // turning it off releases it and takes the picture off the others' tiles.
  ownCamera: false,
  ws: null,
  wsDown: false,
  retry: 0,
  seq: 0,
  unread: 0,
  // Each (re)connection of the socket starts a new epoch; a member seen in
  // a roster of the current epoch and then absent from one has left.
  epoch: 0,
  seen: new Map(), // member id -> epoch of the last roster that had it
  missing: new Map(), // member id -> when a roster after a reconnect lacked it
};

// Tests and support staff read the peer connections through this handle.
window.openConsult = {
  peers: () => [...state.peers.values()].map((p) => p.pc),
  mediaServer: () => (state.sfu ? state.sfu.pc : null),
  state,
};

export function setStatus(text) {
  $("status").textContent = text;
}

// send sends a message on the signaling socket and returns its id, or null
// when the socket is down and the message could not be sent. An offer or
// answer comes with its again (see busy.js track): the server may refuse
// it as busy.
export function send(msg, again) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return null;
  msg.id = String(++state.seq);
  const text = JSON.stringify(msg);
  state.ws.send(text);
  if (again) track(msg.id, text.length, again);
  return msg.id;
}
