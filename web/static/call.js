// The call page of clinicians and guests: one WebSocket to the signaling
// server, one RTCPeerConnection per other member (perfect negotiation, so
// glare and renegotiation such as screen sharing just work) or, once the
// consult is on the media server, one to the server (sfu.js); the lobby for
// the host, chat, device controls and a connection indicator; recording
// consent and its indicator (recording.js).
import { connectionStats } from "./stats.js";
import { MediaServerLink, firstFrame } from "./sfu.js";
import { Recording, lobbyNote } from "./recording.js";
import { t, tNodes, formatNumber, formatSize, formatTime } from "./i18n.js";

const root = document.getElementById("call");
const consultId = root.dataset.consult;
const isHost = root.dataset.host === "true";
const audioOnly = new URLSearchParams(location.search).get("audio") === "only";

const $ = (id) => document.getElementById(id);
const statusLine = $("status");

const state = {
  me: null,
  admitted: false,
  over: false,
  iceServers: [],
  policy: "all",
  roster: new Map(), // member id -> info
  peers: new Map(), // member id -> peer
  route: "p2p", // "p2p" or "sfu": where media goes
  sfu: null, // MediaServerLink while on the media server
  local: null, // MediaStream
  screen: null, // MediaStreamTrack while sharing
  ws: null,
  retry: 0,
  seq: 0,
  unread: 0,
};

// Tests and support staff read the peer connections through this handle.
window.openConsult = {
  peers: () => [...state.peers.values()].map((p) => p.pc),
  mediaServer: () => (state.sfu ? state.sfu.pc : null),
  state,
};

function setStatus(text) {
  statusLine.textContent = text;
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    msg.id = String(++state.seq);
    state.ws.send(JSON.stringify(msg));
  }
}

const recording = new Recording({ root, send, isHost, status: setStatus });

// ---- local media ----

async function startMedia() {
  const wantVideo = !audioOnly;
  try {
    state.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: wantVideo });
  } catch (err) {
    try {
      state.local = await navigator.mediaDevices.getUserMedia({ audio: true });
      if (wantVideo) setStatus(t("js.call.camera.unavailable"));
    } catch {
      // No microphone: the camera alone still lets the clinician see them.
      try {
        state.local = wantVideo ? await navigator.mediaDevices.getUserMedia({ video: true }) : new MediaStream();
      } catch {
        state.local = new MediaStream();
      }
      if (state.local.getVideoTracks().length === 0) setStatus(t("js.call.media.unavailable"));
    }
  }
  // Without a microphone the waiting room says so, and the clinician's
  // lobby entry too (see connect).
  $("lobby-nomic").hidden = state.local.getAudioTracks().length > 0;
  tile(state.me || "me", t("js.call.you"), state.local, true);
  $("lobby-self").srcObject = state.local;
  $("lobby-self").hidden = state.local.getVideoTracks().length === 0;
  await fillDeviceLists();
}

async function fillDeviceLists() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, select] of [["videoinput", $("camera-select")], ["audioinput", $("mic-select")]]) {
    select.replaceChildren();
    const current = state.local.getTracks().find((t) => t.kind === (kind === "videoinput" ? "video" : "audio"));
    for (const d of devices.filter((d) => d.kind === kind)) {
      const opt = new Option(d.label || (kind === "videoinput" ? t("js.call.camera") : t("js.call.microphone")), d.deviceId);
      if (current && current.getSettings().deviceId === d.deviceId) opt.selected = true;
      select.add(opt);
    }
  }
  // Phones have a front and a back camera; desktops pick from the list.
  const cameras = devices.filter((d) => d.kind === "videoinput").length;
  $("flip").hidden = !(cameras > 1 && matchMedia("(pointer: coarse)").matches);
}

// Screen sharing only where the browser offers it (not on phones).
$("share").hidden = !navigator.mediaDevices?.getDisplayMedia;

$("flip").addEventListener("click", () => {
  const select = $("camera-select");
  if (select.options.length < 2) return;
  select.selectedIndex = (select.selectedIndex + 1) % select.options.length;
  switchDevice("video", select.value);
});

async function switchDevice(kind, deviceId) {
  const constraints = kind === "video" ? { video: { deviceId: { exact: deviceId } } } : { audio: { deviceId: { exact: deviceId } } };
  const fresh = await navigator.mediaDevices.getUserMedia(constraints);
  const track = fresh.getTracks()[0];
  const old = state.local.getTracks().find((t) => t.kind === kind);
  if (old) {
    track.enabled = old.enabled;
    state.local.removeTrack(old);
    old.stop();
  }
  state.local.addTrack(track);
  const outgoing = kind === "video" && state.screen ? state.screen : track;
  for (const p of state.peers.values()) replaceOrAdd(p, kind, outgoing);
  state.sfu?.replaceTrack(kind, outgoing, kind === "video" && !!state.screen);
}

function replaceOrAdd(peer, kind, track) {
  const sender = peer.pc.getSenders().find((s) => s.track && s.track.kind === kind) ||
    peer.pc.getTransceivers().find((t) => t.receiver.track.kind === kind && !t.sender.track)?.sender;
  if (sender) {
    sender.replaceTrack(track);
    const tr = peer.pc.getTransceivers().find((t) => t.sender === sender);
    if (tr && tr.direction === "recvonly") tr.direction = "sendrecv"; // renegotiates
  } else {
    peer.pc.addTrack(track, state.local);
  }
}

function sendMediaState() {
  const a = state.local.getAudioTracks()[0];
  const v = state.local.getVideoTracks()[0];
  const video = (!!v && v.enabled) || !!state.screen;
  send({ type: "media-state", audio: !!a && a.enabled, video });
  const self = document.querySelector("figure.tile.self");
  if (self) markTile(self, { audio: !!a && a.enabled, video });
}

function setControl(id, pressed, label) {
  const b = $(id);
  b.setAttribute("aria-pressed", String(pressed));
  b.querySelector(".ctl-label").textContent = label;
}

$("mute").addEventListener("click", (e) => {
  const tracks = state.local.getAudioTracks();
  const muted = tracks.length > 0 && tracks[0].enabled;
  tracks.forEach((t) => { t.enabled = !muted; });
  setControl("mute", muted, muted ? t("js.call.unmute") : t("js.call.mute"));
  sendMediaState();
});

$("camera").addEventListener("click", () => {
  const tracks = state.local.getVideoTracks();
  const off = tracks.length > 0 && tracks[0].enabled;
  tracks.forEach((t) => { t.enabled = !off; });
  setControl("camera", off, off ? t("js.call.video.start") : t("js.call.video.stop"));
  sendMediaState();
});

$("share").addEventListener("click", async () => {
  if (state.screen) return stopSharing();
  try {
    const display = await navigator.mediaDevices.getDisplayMedia({ video: true });
    state.screen = display.getVideoTracks()[0];
  } catch {
    return; // the user cancelled the picker
  }
  state.screen.addEventListener("ended", stopSharing);
  for (const p of state.peers.values()) replaceOrAdd(p, "video", state.screen);
  state.sfu?.replaceTrack("video", state.screen, true);
  setControl("share", true, t("js.call.share.stop"));
  sendMediaState();
});

function stopSharing() {
  if (!state.screen) return;
  state.screen.stop();
  state.screen = null;
  const cam = state.local.getVideoTracks()[0] || null;
  for (const p of state.peers.values()) {
    const sender = p.pc.getSenders().find((s) => s.track && s.track.kind === "video");
    if (sender) sender.replaceTrack(cam);
  }
  state.sfu?.replaceTrack("video", cam);
  setControl("share", false, t("js.call.share"));
  sendMediaState();
}

$("camera-select").addEventListener("change", (e) => switchDevice("video", e.target.value));
$("mic-select").addEventListener("change", (e) => switchDevice("audio", e.target.value));
$("leave")?.addEventListener("click", () => {
  send({ type: "leave" });
  finish(t("js.call.left"));
});
$("end-form")?.addEventListener("submit", (e) => {
  if (!confirm(t("js.call.end.confirm"))) e.preventDefault();
});

// ---- tiles ----
// One remote member fills the stage; more make a grid. The self-view is a
// mirrored picture in picture, moved to another corner by dragging it or
// with its move button. A member without a picture shows a name card.

const corners = ["br", "bl", "tl", "tr"];

function tile(id, name, stream, self) {
  let fig = document.querySelector(`figure[data-member="${CSS.escape(id)}"]`);
  if (!fig) {
    fig = document.createElement("figure");
    fig.className = "tile no-video" + (self ? " self" : "");
    fig.dataset.member = id;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = !!self;
    video.addEventListener("resize", () => pictureChanged(fig));
    video.addEventListener("loadeddata", () => pictureChanged(fig));
    const card = document.createElement("div");
    card.className = "name-card";
    card.setAttribute("aria-hidden", "true");
    const initials = document.createElement("span");
    initials.className = "initials";
    card.append(initials);
    const cap = document.createElement("figcaption");
    const label = document.createElement("span");
    label.className = "name";
    const marks = document.createElement("span");
    marks.className = "marks";
    cap.append(label, marks);
    fig.append(video, card, cap);
    if (self) selfView(fig);
    $("tiles").append(fig);
    if (!self) tileSizes.observe(video);
  }
  fig.querySelector(".name").textContent = name;
  fig.querySelector(".initials").textContent = initialsOf(name);
  const video = fig.querySelector("video");
  if (stream && video.srcObject !== stream) video.srcObject = stream;
  pictureChanged(fig);
  layoutTiles();
  return fig;
}

function initialsOf(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => [...w][0].toUpperCase()).join("");
}

// pictureChanged shows the name card while a tile has no picture: no
// stream yet, no video track, or the member turned the camera off.
function pictureChanged(fig) {
  const video = fig.querySelector("video");
  const stream = video.srcObject;
  const hasTrack = !!stream && stream.getVideoTracks().some((t) => t.readyState === "live" && (!fig.classList.contains("self") || t.enabled));
  const off = fig.dataset.video === "off";
  fig.classList.toggle("no-video", off || !hasTrack || (!fig.classList.contains("self") && video.videoWidth === 0));
}

// markTile shows a member's microphone and camera state on the tile.
function markTile(fig, m) {
  fig.dataset.video = m.video === false ? "off" : "on";
  const marks = [];
  if (m.audio === false) marks.push(t("js.call.marks.muted"));
  if (m.video === false) marks.push(t("js.call.marks.camera.off"));
  fig.querySelector(".marks").textContent = marks.length ? `· ${marks.join(", ")}` : "";
  pictureChanged(fig);
}

function layoutTiles() {
  const remote = document.querySelectorAll("figure.tile:not(.self)").length;
  $("tiles").dataset.remote = remote > 6 ? "many" : String(remote);
  $("alone").hidden = remote > 0;
}

function selfView(fig) {
  fig.dataset.corner = "br";
  const move = (corner) => { fig.dataset.corner = corner; };
  const next = () => move(corners[(corners.indexOf(fig.dataset.corner) + 1) % corners.length]);
  const mover = document.createElement("button");
  mover.type = "button";
  mover.className = "move-self";
  mover.setAttribute("aria-label", t("js.call.move.self"));
  mover.textContent = "⤡";
  mover.addEventListener("click", (e) => { e.stopPropagation(); next(); });
  mover.addEventListener("pointerdown", (e) => e.stopPropagation());
  fig.append(mover);
  let start = null;
  fig.addEventListener("pointerdown", (e) => {
    start = { x: e.clientX, y: e.clientY };
    fig.setPointerCapture(e.pointerId);
  });
  fig.addEventListener("pointerup", (e) => {
    if (!start) return;
    const moved = Math.abs(e.clientX - start.x) + Math.abs(e.clientY - start.y) > 10;
    start = null;
    const stage = $("stage").getBoundingClientRect();
    if (!moved) return next();
    const right = e.clientX > stage.left + stage.width / 2;
    const bottom = e.clientY > stage.top + stage.height / 2;
    move((bottom ? "b" : "t") + (right ? "r" : "l"));
  });
}

// The media server forwards each camera at the size its tile shows.
const tileSizes = new ResizeObserver((entries) => {
  for (const e of entries) {
    const id = e.target.closest("figure")?.dataset.member;
    if (id) state.sfu?.view(id, e.contentRect.width, e.contentRect.height);
  }
});

function removeTile(id) {
  document.querySelector(`figure[data-member="${CSS.escape(id)}"]`)?.remove();
  layoutTiles();
}

// ---- peers (perfect negotiation) ----

function peer(id) {
  let p = state.peers.get(id);
  if (p) return p;
  const pc = new RTCPeerConnection({ iceServers: state.iceServers, iceTransportPolicy: state.policy });
  // The member with the smaller id yields on glare.
  p = { id, pc, polite: state.me < id, makingOffer: false, ignoreOffer: false };
  state.peers.set(id, p);
  for (const t of state.local.getTracks()) pc.addTrack(t.kind === "video" && state.screen ? state.screen : t, state.local);
  if (state.local.getAudioTracks().length === 0) pc.addTransceiver("audio", { direction: "recvonly" });
  if (state.local.getVideoTracks().length === 0) pc.addTransceiver("video", { direction: "recvonly" });

  pc.onnegotiationneeded = async () => {
    try {
      p.makingOffer = true;
      await pc.setLocalDescription();
      send({ type: "offer", to: id, sdp: pc.localDescription.sdp });
    } catch (err) {
      console.warn("negotiation", err);
    } finally {
      p.makingOffer = false;
    }
  };
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) send({ type: "candidate", to: id, candidate: candidate.toJSON() });
  };
  pc.ontrack = ({ streams }) => {
    const info = state.roster.get(id);
    const stream = streams[0] || new MediaStream();
    if (!state.sfu?.receiving(id)) {
      tile(id, info ? info.name : "", stream, false);
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
      tile(id, info ? info.name : "", stream, false);
      leaveMediaServerWhenDirect();
    });
  };
  pc.oniceconnectionstatechange = () => {
    // A network change (Wi-Fi to mobile data) fails the old path; an ICE
    // restart finds a new one without hanging up.
    if (pc.iceConnectionState !== "failed") return;
    if (state.route === "sfu" && state.sfu?.receiving(id)) dropPeerConnection(id);
    else pc.restartIce();
  };
  return p;
}

async function onDescription(from, description) {
  // On the media server, a member whose media already arrives from it has
  // closed the direct connection; a late offer must not reopen it.
  if (state.route === "sfu" && !state.peers.has(from) && state.sfu?.receiving(from)) return;
  const p = peer(from);
  const pc = p.pc;
  const collision = description.type === "offer" && (p.makingOffer || pc.signalingState !== "stable");
  p.ignoreOffer = !p.polite && collision;
  if (p.ignoreOffer) return;
  await pc.setRemoteDescription(description);
  if (description.type === "offer") {
    await pc.setLocalDescription();
    send({ type: "answer", to: from, sdp: pc.localDescription.sdp });
  }
}

async function onCandidate(from, candidate) {
  if (!state.peers.has(from) && state.route === "sfu") return;
  const p = peer(from);
  try {
    await p.pc.addIceCandidate(candidate);
  } catch (err) {
    if (!p.ignoreOffer) console.warn("candidate", err);
  }
}

// watch restarts a negotiation that has produced no answer after a few
// seconds (a lost message, a race in the browser), instead of leaving the
// tile black.
function watch(p) {
  setTimeout(() => {
    if (state.peers.get(p.id) === p && !p.pc.remoteDescription && !p.makingOffer && p.pc.signalingState !== "closed") {
      p.pc.restartIce();
      watch(p);
    }
  }, 4000);
}

function dropPeer(id) {
  dropPeerConnection(id);
  removeTile(id);
}

function dropPeerConnection(id) {
  const p = state.peers.get(id);
  if (p) {
    p.pc.close();
    state.peers.delete(id);
  }
}

// ---- the media server ----

// toMediaServer opens (or reopens) the connection to the media server. The
// direct connections stay until each member's media arrives through it.
function toMediaServer() {
  state.route = "sfu";
  state.sfu?.close();
  state.sfu = new MediaServerLink({
    config: { iceServers: state.iceServers, iceTransportPolicy: state.policy },
    local: state.local,
    screen: state.screen,
    send,
    onMedia(member, stream) {
      const info = state.roster.get(member);
      if (!info || member === state.me || state.route !== "sfu") return;
      tile(member, info.name, stream, false);
      dropPeerConnection(member);
      const video = document.querySelector(`figure[data-member="${CSS.escape(member)}"] video`);
      if (video) state.sfu.view(member, video.clientWidth, video.clientHeight);
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
function fromMediaServer() {
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

function leaveMediaServerWhenDirect() {
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
function backToPeers() {
  state.route = "p2p";
  state.sfu?.close();
  state.sfu = null;
  renderRoster([...state.roster.values()]);
}

// A hidden page shows no video: the media server pauses it (a 0x0 view,
// as for a hidden tile) and resumes it at a keyframe when the page is
// shown again, which saves a phone's data and battery in the background.
document.addEventListener("visibilitychange", () => {
  if (!state.sfu) return;
  const hidden = document.visibilityState === "hidden";
  for (const fig of document.querySelectorAll("figure.tile:not(.self)")) {
    const video = fig.querySelector("video");
    state.sfu.view(fig.dataset.member, hidden ? 0 : video.clientWidth, hidden ? 0 : video.clientHeight);
  }
});

window.addEventListener("online", () => {
  for (const p of state.peers.values()) p.pc.restartIce();
  state.sfu?.pc.restartIce();
});

// ---- roster, lobby, chat ----

function renderRoster(members) {
  state.roster = new Map(members.map((m) => [m.id, m]));
  const list = $("roster");
  list.replaceChildren();
  for (const m of members) {
    const li = document.createElement("li");
    li.textContent = `${m.name}${m.id === state.me ? " " + t("js.call.roster.you") : ""}${m.host ? " · " + t("js.call.roster.clinician") : ""}${m.audio === false ? " · " + t("js.call.marks.muted") : ""}`;
    if (isHost && m.id !== state.me) {
      li.append(" ", button(t("js.call.remove"), () => send({ type: "remove", member: m.id }), "small secondary"));
    }
    list.append(li);
    if (m.id !== state.me) {
      // One side of each pair opens the connection, so the first offers
      // never cross; the other side answers when the offer arrives.
      // Later renegotiation (screen sharing) may start from either side.
      if (state.me < m.id && state.route === "p2p") watch(peer(m.id));
      markTile(tile(m.id, m.name, null, false), m);
    }
  }
  for (const id of [...state.peers.keys()]) if (!state.roster.has(id)) dropPeer(id);
  // On the media server a member who left has a tile but no connection.
  for (const fig of document.querySelectorAll("figure.tile:not(.self)")) {
    if (!state.roster.has(fig.dataset.member)) fig.remove();
  }
  layoutTiles();
}

// What the lobby says of a guest's connectivity check.
const checkNotes = {
  direct: t("js.call.check.direct"),
  relay: t("js.call.check.relay"),
  failed: t("js.call.check.failed"),
  unknown: t("js.call.check.unknown"),
};

function renderLobby(waiting) {
  const list = $("lobby");
  if (!list) return;
  list.replaceChildren();
  if (waiting.length === 0) {
    const li = document.createElement("li");
    li.className = "help";
    li.textContent = t("js.call.lobby.empty");
    list.append(li);
    $("waiting-badge").hidden = true;
    if (state.admitted) setStatus(t("js.call.in.host"));
    return;
  }
  for (const w of waiting) {
    const li = document.createElement("li");
    li.className = "waiting";
    li.dataset.member = w.id;
    const name = document.createElement("span");
    name.textContent = w.name;
    li.append(name, " ");
    if (checkNotes[w.check]) {
      const note = document.createElement("span");
      note.className = `check check-${w.check}`;
      note.textContent = checkNotes[w.check];
      li.append(note, " ");
    }
    if (w.noMic) {
      const note = document.createElement("span");
      note.className = "check check-nomic";
      note.textContent = t("js.call.check.nomic");
      li.append(note, " ");
    }
    if (lobbyNote(w)) li.append(lobbyNote(w), " ");
    li.append(button(t("js.call.admit"), () => send({ type: "admit", member: w.id }), "small admit"), " ",
      button(t("js.call.deny"), () => send({ type: "deny", member: w.id }), "small secondary"));
    list.append(li);
  }
  setStatus(t("js.call.waiting.count", { count: waiting.length }));
  const badge = $("waiting-badge");
  badge.textContent = String(waiting.length);
  badge.hidden = false;
  $("open-people").setAttribute("aria-label", t("js.call.people.waiting", { count: waiting.length }));
}

function button(label, onClick, cls) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

function addChat(m) {
  if (document.querySelector(`#chat-log li[data-seq="${m.seq}"]`)) return;
  const li = document.createElement("li");
  li.dataset.seq = m.seq;
  const who = document.createElement("strong");
  who.textContent = m.from === state.me ? t("js.call.you") : m.name;
  const time = document.createElement("time");
  time.dateTime = m.at;
  time.textContent = formatTime(new Date(m.at), "time");
  const text = document.createElement("p");
  if (m.file) {
    const a = document.createElement("a");
    a.href = `/consults/${encodeURIComponent(consultId)}/files/${encodeURIComponent(m.file.id)}`;
    a.textContent = `${m.file.name} (${formatSize(m.file.size)})`;
    a.className = "file-link";
    text.append(...tNodes("js.call.shared", { file: a }));
  } else {
    text.textContent = m.text;
  }
  li.append(who, " ", time, text);
  $("chat-log").append(li);
  li.scrollIntoView({ block: "nearest" });
  if (m.from !== state.me && !chatVisible()) {
    state.unread++;
    const badge = $("unread");
    badge.textContent = String(state.unread);
    badge.hidden = false;
    $("open-chat").setAttribute("aria-label", t("js.call.chat.unread", { count: state.unread }));
  }
}

// ---- chat and people: a column on wide screens, a sheet on phones ----

const wide = matchMedia("(min-width: 60rem)");

function chatVisible() {
  return state.admitted && (wide.matches || root.dataset.sheet === "chat");
}

function clearUnread() {
  state.unread = 0;
  $("unread").hidden = true;
  $("open-chat").removeAttribute("aria-label");
}

function openSheet(which) {
  const same = root.dataset.sheet === which;
  if (wide.matches) {
    // The column shows both; the button takes the keyboard there.
    (which === "chat" ? $("chat-text") : $("people-title")).focus?.();
    if (which === "chat") clearUnread();
    return;
  }
  if (same || !which) delete root.dataset.sheet;
  else root.dataset.sheet = which;
  $("open-chat").setAttribute("aria-expanded", String(root.dataset.sheet === "chat"));
  $("open-people").setAttribute("aria-expanded", String(root.dataset.sheet === "people"));
  if (root.dataset.sheet === "chat") {
    clearUnread();
    $("chat-title").focus();
  } else if (root.dataset.sheet === "people") {
    $("people-title").focus();
  }
}

$("open-chat").addEventListener("click", () => openSheet("chat"));
$("open-people").addEventListener("click", () => openSheet("people"));
$("close-sheet").addEventListener("click", () => {
  const which = root.dataset.sheet;
  openSheet(null);
  $(which === "chat" ? "open-chat" : "open-people").focus();
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && root.dataset.sheet) $("close-sheet").click();
});
wide.addEventListener("change", () => { if (wide.matches) { delete root.dataset.sheet; clearUnread(); } });

$("chat-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const status = $("file-status");
  status.textContent = t("js.call.file.sending", { name: file.name });
  const body = new FormData();
  body.append("file", file);
  try {
    const res = await fetch(`/consults/${encodeURIComponent(consultId)}/files`, { method: "POST", body, credentials: "same-origin" });
    const reply = await res.json().catch(() => ({}));
    status.textContent = res.ok ? "" : reply.message || t("js.call.file.failed");
  } catch {
    status.textContent = t("js.call.file.network");
  }
  e.target.value = "";
});

$("chat-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("chat-text");
  const text = input.value.trim();
  if (!text) return;
  send({ type: "chat", text });
  input.value = "";
});

// ---- connection indicator ----
// Bars from the worst connection's round trip and loss; the path and the
// figures behind the button.

function qualityLevel(s) {
  const rtt = s.rttMs ?? 0;
  if (rtt < 200 && s.loss < 0.02) return 4;
  if (rtt < 400 && s.loss < 0.05) return 3;
  if (rtt < 800 && s.loss < 0.1) return 2;
  return 1;
}

const qualityWords = [0, 1, 2, 3, 4].map((l) => t(`js.call.quality.${l}`));

setInterval(async () => {
  const parts = [];
  let level = 0;
  const note = (label, s) => {
    const loss = formatNumber(s.loss * 100, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
    parts.push(s.rttMs !== null ? t("js.call.path.rtt", { name: label, path: s.path, rtt: s.rttMs, loss }) : t("js.call.path", { name: label, path: s.path, loss }));
    const l = qualityLevel(s);
    level = level === 0 ? l : Math.min(level, l);
  };
  for (const p of state.peers.values()) {
    const name = state.roster.get(p.id)?.name || t("js.call.peer");
    const s = await connectionStats(p.pc, name).catch(() => null);
    if (s) note(name, s);
  }
  if (state.sfu) {
    const s = await connectionStats(state.sfu.pc, t("js.call.server.other")).catch(() => null);
    if (s) note(t("js.call.server"), s);
  }
  $("path").textContent = parts.join(" — ");
  $("quality").dataset.level = String(level);
  $("quality-label").textContent = t("js.call.quality", { level: qualityWords[level] });
  const down = [...state.peers.values()].some((p) => p.pc.iceConnectionState === "disconnected" || p.pc.iceConnectionState === "failed");
  showReconnecting(down || !!state.wsDown);
}, 2000);

$("quality").addEventListener("click", () => {
  const details = $("quality-details");
  details.hidden = !details.hidden;
  $("quality").setAttribute("aria-expanded", String(!details.hidden));
});

function showReconnecting(on) {
  $("reconnecting").hidden = !on || state.over || !state.admitted;
}

// ---- signaling ----

const handlers = {
  welcome(m) {
    state.me = m.member;
    state.wsDown = false;
    showReconnecting(false);
    const self = document.querySelector("figure.self");
    if (self) self.dataset.member = m.member;
    recording.welcome(m);
    if (m.state === "lobby") {
      $("lobby-wait").hidden = false;
      root.classList.remove("in-call");
      setStatus(t("js.call.status.lobby"));
    }
  },
  admitted(m) {
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
    // A reconnected tab keeps a working media server connection.
    if (state.route === "sfu" && (!state.sfu || state.sfu.failed())) toMediaServer();
    sendMediaState(); // others see whether we are muted or camera-off
    recording.enter();
  },
  route(m) {
    if (!state.admitted) return;
    if (m.route === "p2p") {
      if (state.route === "sfu") fromMediaServer();
      return;
    }
    // A move back to direct connections in progress starts over on the
    // server, which closes them as its media arrives.
    if (m.restart || !state.sfu || state.route !== "sfu") toMediaServer();
  },
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
  error(m) {
    if (m.code === "media-unavailable") return backToPeers();
    if (recording.error(m)) return;
    setStatus(t("js.call.refused", { code: m.code }));
  },
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
  ack() {},
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
    // Media keeps flowing peer to peer; the server keeps our place for a
    // grace period while we reconnect.
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
