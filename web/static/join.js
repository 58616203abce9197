// The patient's device check: camera preview, microphone level, a test
// sound and a connectivity check, with plain-language messages when a
// device is missing or blocked.
import { t } from "./i18n.js";

const preview = document.getElementById("preview");
const cameraStatus = document.getElementById("camera-status");
const deviceHelp = document.getElementById("device-help");
const deviceActions = document.getElementById("device-actions");
const meter = document.getElementById("mic-level");
const networkStatus = document.getElementById("network-status");
const networkDetails = document.getElementById("network-details");
const audioOnly = document.getElementById("audio-only");

let audioContext = null;
let current = null; // the stream shown, stopped before a retry

// browserHelp is the paragraph that tells this browser's users how to
// allow the camera and microphone. Samsung Internet and Edge carry
// "Chrome" in their user agent, and every browser on iOS is Safari inside.
function browserHelp(ua, touchMac) {
  if (/SamsungBrowser\//.test(ua)) return t("js.join.help.samsung");
  if (/iPhone|iPad|iPod/.test(ua) || (touchMac && /Macintosh/.test(ua))) return t("js.join.help.ios");
  if (/Firefox\/|FxiOS\//.test(ua)) return t("js.join.help.firefox");
  if (/Chrome\/|Chromium\/|Edg\//.test(ua)) return t("js.join.help.chrome");
  return t("js.join.help.other");
}

// getMedia asks for constraints and returns the stream, or the error's name.
async function getMedia(constraints) {
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(constraints) };
  } catch (err) {
    return { error: err.name || "Error" };
  }
}

// The one message for each outcome: what works decides, so that no two
// messages contradict each other.
function deviceMessage(video, audio, videoErr, audioErr) {
  const blocked = (e) => e === "NotAllowedError" || e === "SecurityError";
  const missing = (e) => e === "NotFoundError" || e === "OverconstrainedError";
  if (video && audio) return { text: t("js.join.ok") };
  if (audio) {
    if (blocked(videoErr)) return { text: t("js.join.camera.blocked"), help: true };
    return { text: missing(videoErr) ? t("js.join.nocamera") : t("js.join.camera.failed"), retry: true };
  }
  if (video) {
    if (blocked(audioErr)) return { text: t("js.join.mic.blocked"), help: true };
    return { text: t("js.join.nomic"), retry: true };
  }
  if (blocked(videoErr) || blocked(audioErr)) return { text: t("js.join.blocked"), help: true };
  return { text: t("js.join.nodevices"), retry: true };
}

async function checkDevices() {
  if (current) for (const track of current.getTracks()) track.stop();
  cameraStatus.textContent = t("js.join.asking");
  let both = await getMedia({ audio: true, video: true });
  let videoErr = "", audioErr = "";
  let stream = both.stream;
  if (!stream) {
    // Ask for each device alone, to tell which one is missing.
    const a = await getMedia({ audio: true });
    const v = await getMedia({ video: true });
    audioErr = a.error || "";
    videoErr = v.error || "";
    stream = new MediaStream([...(a.stream?.getTracks() || []), ...(v.stream?.getTracks() || [])]);
  }
  current = stream;
  const video = stream.getVideoTracks().length > 0, audio = stream.getAudioTracks().length > 0;
  const msg = deviceMessage(video, audio, videoErr, audioErr);
  cameraStatus.textContent = msg.text;
  cameraStatus.dataset.devices = (video ? "camera" : "nocamera") + " " + (audio ? "mic" : "nomic");
  deviceHelp.hidden = !msg.help;
  deviceHelp.textContent = msg.help ? browserHelp(navigator.userAgent, navigator.maxTouchPoints > 1) : "";
  deviceActions.hidden = !(msg.help || msg.retry);
  audioOnly.checked = !video;
  preview.hidden = !video;
  preview.srcObject = video ? stream : null;
  if (audio) showLevel(stream);
}

document.getElementById("device-retry").addEventListener("click", checkDevices);

let levelRun = 0; // the meter loop of the latest stream; older ones stop

function showLevel(stream) {
  if (audioContext) audioContext.close();
  audioContext = new AudioContext();
  const source = audioContext.createMediaStreamSource(stream);
  const analyser = audioContext.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const run = ++levelRun;
  const tick = () => {
    if (run !== levelRun) return;
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const v of samples) sum += v * v;
    meter.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
    requestAnimationFrame(tick);
  };
  tick();
}

document.getElementById("speaker-test").addEventListener("click", async () => {
  audioContext = audioContext || new AudioContext();
  await audioContext.resume();
  const osc = audioContext.createOscillator();
  const gain = audioContext.createGain();
  osc.frequency.value = 440;
  gain.gain.value = 0.2;
  osc.connect(gain).connect(audioContext.destination);
  osc.start();
  osc.stop(audioContext.currentTime + 1);
});

// checkNetwork proves, before the patient joins, that their network reaches
// the institution: a relay allocation (a relay candidate, over UDP, TCP or
// TLS) or an answer from its STUN server (a server-reflexive candidate).
// Host candidates prove nothing. The browser asks every server at once, so
// with UDP blocked the TCP and TLS relays answer within the first seconds;
// the check ends within 3 s once something is proven, at the latest after 8 s.
// The verdict shown is the result kept for the call page, which tells the
// clinician's lobby when the check failed.
const checkSettle = 2500;
const checkGiveUp = 8000;

// The patient reads one sentence without network words; the details (the
// path and the relay's transports) are behind a toggle for whoever helps them.
const verdicts = {
  direct: () => t("js.join.ready"),
  relay: () => t("js.join.ready"),
  failed: () => t("js.join.failed"),
  unknown: () => t("js.join.unknown"),
};

function showVerdict(result, relays) {
  networkStatus.textContent = verdicts[result]();
  networkStatus.dataset.result = result;
  const details = result === "unknown"
    ? [t("js.join.detail.unknown")]
    : [result === "direct" ? t("js.join.detail.direct") : t("js.join.detail.nodirect"),
      relays.length ? t("js.join.detail.relays", { relays: relays.join(", ") }) : t("js.join.detail.norelay")];
  const list = document.getElementById("network-detail-list");
  list.replaceChildren(...details.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
  networkDetails.hidden = false;
  try {
    sessionStorage.setItem("openconsult.check", result);
  } catch {
    // storage disabled: the lobby shows no check result
  }
}

async function checkNetwork() {
  let config;
  try {
    const res = await fetch(location.pathname + "/connectivity", { credentials: "same-origin" });
    if (!res.ok) throw new Error(String(res.status));
    config = await res.json();
  } catch {
    return showVerdict("unknown", []);
  }
  if (!config.iceServers || config.iceServers.length === 0) return showVerdict("unknown", []);
  const pc = new RTCPeerConnection({ iceServers: config.iceServers });
  pc.createDataChannel("check");
  const found = { srflx: false, relay: new Set() };
  const proven = () => found.srflx || found.relay.size > 0;
  await new Promise((resolve) => {
    let settled = false;
    setTimeout(() => {
      settled = true;
      if (proven()) resolve();
    }, checkSettle);
    setTimeout(resolve, checkGiveUp);
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate) return resolve();
      if (candidate.type === "srflx") found.srflx = true;
      if (candidate.type === "relay") {
        found.relay.add((candidate.relayProtocol || candidate.protocol || "udp").toUpperCase());
      }
      if (settled && proven()) resolve();
    };
    pc.createOffer().then((o) => pc.setLocalDescription(o)).catch(resolve);
  });
  pc.close();
  // In one order whatever answered first: UDP, the best path, then TCP, TLS.
  const rank = (p) => ["UDP", "TCP", "TLS"].indexOf(p) >>> 0;
  const relays = [...found.relay].sort((a, b) => rank(a) - rank(b));
  showVerdict(found.srflx ? "direct" : relays.length ? "relay" : "failed", relays);
}

checkDevices();
checkNetwork();
