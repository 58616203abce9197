// The call page of clinicians and guests: one WebSocket to the signaling
// server, one RTCPeerConnection per other member (peers.js) or, once the
// consult is on the media server, one to the server (sfu.js, route.js);
// tiles (tiles.js), the roster and the host's lobby (roster.js), chat
// (chat.js), device controls (controls.js), a connection indicator
// (quality.js), and recording consent and its indicator (recording.js).
// Connections outlive a reconnection of the socket: the room may come back
// on a restarted server or another replica, and the call goes on.
import { $, root, state, consultId, isHost, send, setStatus } from "./callstate.js";
import { Recording } from "./recording.js";
import { t } from "./i18n.js";
import { setSelfId } from "./tiles.js";
import { startMedia, sendMediaState } from "./controls.js";
import { addChat } from "./chat.js";
import { renderRoster, renderLobby, sweepMissing } from "./roster.js";
import { onDescription, onCandidate, undelivered, dropPeer, restartAll, tend } from "./peers.js";
import { admittedRoute, onRoute, backToPeers, onUndeliveredToServer } from "./route.js";
import { showReconnecting } from "./quality.js";
import { busy, settled } from "./busy.js";

const recording = new Recording({ root, send, isHost, status: setStatus });

$("leave")?.addEventListener("click", () => {
  send({ type: "leave" });
  finish(t("js.call.left"));
});
$("end-form")?.addEventListener("submit", (e) => {
  if (!confirm(t("js.call.end.confirm"))) e.preventDefault();
});

window.addEventListener("online", restartAll);

// Every two seconds: pairs whose negotiation stalled are restarted, and
// members missing since a reconnection for too long are forgotten.
setInterval(() => {
  sweepMissing();
  tend();
  if (state.admitted && !state.wsDown && !state.over) state.sfu?.tend();
}, 2000);

// The server refuses a message with a stable code. One that could not
// reach its member or the media server (no-member, not-routed) is
// renegotiated rather than lost; an offer to the media server that
// crossed the server's own is settled by the media server link. An offer
// or answer refused as busy (the server's budget for large messages was
// full) is sent again after a moment (busy.js).
function refused(m) {
  if (m.code === "busy") return busy(() => setStatus(t("js.call.busy")));
  settled(m.ref);
  if (m.code === "media-unavailable") return backToPeers();
  if ((m.code === "no-member" || m.code === "not-routed") && (undelivered(m.ref) || onUndeliveredToServer(m.ref))) return;
  const report = () => setStatus(t("js.call.refused", { code: m.code }));
  if (state.sfu?.refused(m.ref, m.code, report)) return;
  if (recording.error(m)) return;
  report();
}

const handlers = {
  welcome(m) {
    state.me = m.member;
    state.epoch++;
    state.wsDown = false;
    showReconnecting(false);
    setSelfId(m.member);
    recording.welcome(m);
    if (m.state === "lobby") {
      $("lobby-wait").hidden = false;
      root.classList.remove("in-call");
      setStatus(t("js.call.status.lobby"));
    }
  },
  admitted(m) {
    const again = state.admitted;
    state.admitted = true;
    state.iceServers = m.iceServers || [];
    state.policy = m.iceTransportPolicy || "all";
    for (const p of state.peers.values()) p.pc.setConfiguration({ iceServers: state.iceServers, iceTransportPolicy: state.policy });
    $("lobby-wait").hidden = true;
    for (const id of ["stage", "controls", "side"]) $(id).hidden = false;
    root.classList.add("in-call");
    $("lobby-self").srcObject = null;
    setStatus(isHost ? t("js.call.in.host") : t("js.call.in.guest"));
    m.chat.forEach(addChat);
    if (m.route === "sfu") state.route = "sfu";
    renderRoster(m.roster);
    admittedRoute(m, again);
    sendMediaState(); // others see whether we are muted or camera-off
    recording.enter();
  },
  route(m) { if (state.admitted) onRoute(m); },
  speaker(m) {
    for (const fig of document.querySelectorAll("figure.tile")) {
      fig.classList.toggle("speaking", !!m.member && fig.dataset.member === m.member);
    }
  },
  waiting(m) {
    // "Told" only while a clinician is actually connected.
    $("lobby-text").textContent = m.clinician
      ? t("js.call.lobby.told")
      : t("js.call.lobby.later");
    $("lobby-wait").dataset.clinician = String(!!m.clinician);
  },
  roster(m) { if (state.admitted) renderRoster(m.members); },
  lobby(m) { renderLobby(m.waiting); },
  offer(m) {
    if (m.from === "sfu") state.sfu?.description({ type: "offer", sdp: m.sdp });
    else onDescription(m.from, { type: "offer", sdp: m.sdp });
  },
  answer(m) {
    if (m.from === "sfu") state.sfu?.description({ type: "answer", sdp: m.sdp });
    else onDescription(m.from, { type: "answer", sdp: m.sdp });
  },
  candidate(m) { onCandidate(m.from, m.candidate); },
  chat(m) { addChat(m); },
  error: refused,
  denied() { finish(t("js.call.denied")); },
  removed() { finish(t("js.call.removed")); },
  ended() { finish(t("js.call.ended")); },
  // The account was disabled or signed out, or the guest's link withdrawn.
  revoked() {
    finish(isHost ? t("js.call.revoked.host") : t("js.call.revoked.guest"));
  },
  expired() {
    finish(isHost ? t("js.call.expired.host") : t("js.call.expired.guest"));
  },
  ack(m) { settled(m.ref); },
  pong() {},
  ...recording.handlers,
};

// checkQuery carries the join page's connectivity check result, so that
// the clinician's lobby shows whose check failed.
function checkQuery() {
  let result = null;
  try { result = sessionStorage.getItem("openconsult.check"); } catch { /* storage disabled */ }
  const q = new URLSearchParams();
  if (result) q.set("check", result);
  if (!isHost && state.local && state.local.getAudioTracks().length === 0) q.set("mic", "none");
  return q.size ? `?${q}` : "";
}

function connect() {
  const ws = new WebSocket(`wss://${location.host}/ws/consults/${encodeURIComponent(consultId)}${checkQuery()}`);
  state.ws = ws;
  ws.onopen = () => { state.retry = 0; };
  ws.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    const h = handlers[m.type];
    if (h) h(m);
  };
  ws.onclose = () => {
    if (state.over) return;
    // Media keeps flowing on the connections already up; the server keeps
    // our place for a grace period while we reconnect.
    setStatus(t("js.call.ws.lost"));
    state.wsDown = true;
    showReconnecting(true);
    const delay = Math.min(10000, 1000 * 2 ** state.retry++);
    setTimeout(connect, delay);
  };
}

function finish(text) {
  state.over = true;
  recording.finish();
  setStatus(text);
  for (const id of [...state.peers.keys()]) dropPeer(id);
  state.sfu?.close();
  state.sfu = null;
  state.local?.getTracks().forEach((t) => t.stop());
  state.screen?.stop();
  for (const id of ["stage", "controls", "side", "lobby-wait", "reconnecting"]) $(id).hidden = true;
  root.classList.remove("in-call");
  delete root.dataset.sheet;
  state.ws?.close();
}

await startMedia();
connect();
