// The tab's own camera and microphone, and the call's controls: mute,
// camera, screen sharing, device choice, leave and end.
import { $, state, audioOnly, send, setStatus } from "./callstate.js";
import { t } from "./i18n.js";
import { tile, markSelf } from "./tiles.js";

export async function startMedia() {
  const wantVideo = !audioOnly;
  try {
    state.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: wantVideo });
  } catch {
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
  if (state.local.getVideoTracks().length === 0) setControl("camera", true, t("js.call.video.start"));
  if (state.local.getAudioTracks().length === 0) setControl("mute", true, t("js.call.unmute"));
  await fillDeviceLists();
}

async function fillDeviceLists() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, select] of [["videoinput", $("camera-select")], ["audioinput", $("mic-select")]]) {
    select.replaceChildren();
    const current = state.local.getTracks().find((t) => t.kind === (kind === "videoinput" ? "video" : "audio"));
    // Without a camera, or with one turned on during the call, the list
    // starts with "no camera": picking a camera turns it on, and this
    // entry turns it off again.
    if (kind === "videoinput" && (!current || state.ownCamera)) select.add(new Option(t("js.call.camera.none"), "none", !current, !current));
    // Without a microphone the list starts with "no microphone", so that
    // picking any microphone turns it on.
    if (kind === "audioinput" && !current) select.add(new Option(t("js.call.microphone.none"), "none", true, true));
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
  const cameras = [...select.options].filter((o) => o.value !== "none");
  if (cameras.length < 2) return;
  select.value = cameras[(cameras.findIndex((o) => o.selected) + 1) % cameras.length].value;
  switchDevice("video", select.value);
});

async function switchDevice(kind, deviceId) {
  if (kind === "video" && deviceId === "none") return state.ownCamera ? cameraOff() : undefined;
  if (kind === "video" && state.local.getVideoTracks().length === 0) return cameraOn(deviceId);
  if (kind === "audio" && deviceId === "none") return;
  if (kind === "audio" && state.local.getAudioTracks().length === 0) return micOn(deviceId);
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
  if (kind === "video") return sendVideo();
  for (const p of state.peers.values()) replaceOrAdd(p, kind, track);
  state.sfu?.replaceTrack(kind, track);
}

// cameraOn turns a camera on (deviceId, or the default one when empty: a
// camera the page may not name yet, without permission) for a tab that
// has none: it joined without one (audio only, the camera refused or
// missing) or turned it off. Each connection sends it on a video section
// of its own; while a screen is shared, the camera comes when the share
// stops.
async function cameraOn(deviceId) {
  let track;
  try {
    const fresh = await navigator.mediaDevices.getUserMedia({ video: deviceId ? { deviceId: { exact: deviceId } } : true });
    track = fresh.getVideoTracks()[0];
  } catch {
    setStatus(t("js.call.camera.failed"));
    await fillDeviceLists();
    return;
  }
  if (state.over || state.local.getVideoTracks().length > 0) {
    track.stop(); // the call ended, or another click turned a camera on meanwhile
    return;
  }
  state.ownCamera = true;
  state.local.addTrack(track);
  sendVideo();
  setControl("camera", false, t("js.call.video.stop"));
  sendMediaState();
  await fillDeviceLists();
}

// micOn turns a microphone on (deviceId, or the default one when empty)
// for a tab that joined without one (none found, or permission refused).
// Each direct connection sends it on its audio section, which only
// received until now; the media server's connection on a section of its
// own (see sfu.js sendAudio). Muting it then works as for a microphone
// present at join.
async function micOn(deviceId) {
  let track;
  try {
    const fresh = await navigator.mediaDevices.getUserMedia({ audio: deviceId ? { deviceId: { exact: deviceId } } : true });
    track = fresh.getAudioTracks()[0];
  } catch {
    setStatus(t("js.call.microphone.failed"));
    await fillDeviceLists();
    return;
  }
  if (state.over || state.local.getAudioTracks().length > 0) {
    track.stop(); // the call ended, or another click turned a microphone on meanwhile
    return;
  }
  state.local.addTrack(track);
  for (const p of state.peers.values()) replaceOrAdd(p, "audio", track);
  state.sfu?.sendAudio(track);
  $("lobby-nomic").hidden = true;
  setControl("mute", false, t("js.call.mute"));
  sendMediaState();
  await fillDeviceLists();
}

// cameraOff releases a camera turned on during the call (its light goes
// off): the tab sends no video again, and the others' tiles go back to the
// name card rather than keep a last frame.
function cameraOff() {
  for (const track of state.local.getVideoTracks()) {
    state.local.removeTrack(track);
    track.stop();
  }
  state.ownCamera = false;
  sendVideo();
  setControl("camera", true, t("js.call.video.start"));
  sendMediaState();
  fillDeviceLists();
}

// sendVideo sends the screen being shared, else the camera, else nothing,
// on every connection.
function sendVideo() {
  const cam = state.local.getVideoTracks()[0] || null;
  const outgoing = state.screen || cam;
  for (const p of state.peers.values()) {
    if (outgoing) replaceOrAdd(p, "video", outgoing);
    else stopSending(p, null);
  }
  state.sfu?.sendVideo(outgoing, !!state.screen);
}

function replaceOrAdd(peer, kind, track) {
  const sender = peer.pc.getSenders().find((s) => s.track && s.track.kind === kind) ||
    peer.pc.getTransceivers().find((t) => t.receiver.track.kind === kind && !t.sender.track)?.sender;
  if (sender) {
    sender.replaceTrack(track);
    // A section that only received (no camera) now sends in the tab's
    // stream, so the member's tile shows it with the sound.
    sender.setStreams(state.local);
    const tr = peer.pc.getTransceivers().find((t) => t.sender === sender);
    if (tr && tr.direction === "recvonly") tr.direction = "sendrecv"; // renegotiates
  } else {
    peer.pc.addTrack(track, state.local);
  }
}

// stopSending sends the camera again instead of the screen; without a
// camera, the section goes back to receiving only (a renegotiation), so
// the member's picture leaves the others' tiles instead of freezing.
function stopSending(peer, cam) {
  const sender = peer.pc.getSenders().find((s) => s.track && s.track.kind === "video");
  if (!sender) return;
  sender.replaceTrack(cam);
  const tr = peer.pc.getTransceivers().find((t) => t.sender === sender);
  if (!cam && tr && tr.direction === "sendrecv") tr.direction = "recvonly";
}

// sendMediaState tells the others whether this tab is muted or camera-off.
export function sendMediaState() {
  const a = state.local.getAudioTracks()[0];
  const v = state.local.getVideoTracks()[0];
  const video = (!!v && v.enabled) || !!state.screen;
  send({ type: "media-state", audio: !!a && a.enabled, video });
  markSelf({ audio: !!a && a.enabled, video });
}

function setControl(id, pressed, label) {
  const b = $(id);
  b.setAttribute("aria-pressed", String(pressed));
  b.querySelector(".ctl-label").textContent = label;
}

$("mute").addEventListener("click", () => {
  const tracks = state.local.getAudioTracks();
  if (tracks.length === 0) return micOn($("mic-select").value.replace(/^none$/, ""));
  const muted = tracks.length > 0 && tracks[0].enabled;
  tracks.forEach((t) => { t.enabled = !muted; });
  setControl("mute", muted, muted ? t("js.call.unmute") : t("js.call.mute"));
  sendMediaState();
});

$("camera").addEventListener("click", () => {
  const tracks = state.local.getVideoTracks();
  if (tracks.length === 0) return cameraOn($("camera-select").value.replace(/^none$/, ""));
  if (state.ownCamera) return cameraOff();
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
  state.sfu?.share(state.screen);
  setControl("share", true, t("js.call.share.stop"));
  sendMediaState();
});

function stopSharing() {
  if (!state.screen) return;
  state.screen.stop();
  state.screen = null;
  const cam = state.local.getVideoTracks()[0] || null;
  for (const p of state.peers.values()) stopSending(p, cam);
  state.sfu?.unshare(cam);
  setControl("share", false, t("js.call.share"));
  sendMediaState();
}

$("camera-select").addEventListener("change", (e) => switchDevice("video", e.target.value));
$("mic-select").addEventListener("change", (e) => switchDevice("audio", e.target.value));
