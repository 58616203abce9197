// The patient's device check: camera preview, microphone level, a test
// sound and a connectivity check, with plain-language messages when a
// device is missing or blocked.
import { t } from "./i18n.js";

const preview = document.getElementById("preview");
const cameraStatus = document.getElementById("camera-status");
const meter = document.getElementById("mic-level");
const networkStatus = document.getElementById("network-status");
const audioOnly = document.getElementById("audio-only");

let audioContext = null;

async function checkDevices() {
  let stream = null;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    cameraStatus.textContent = t("js.join.ok");
  } catch (err) {
    if (err.name === "NotAllowedError") {
      cameraStatus.textContent = t("js.join.blocked");
    } else if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
      cameraStatus.textContent = t("js.join.nocamera");
    } else {
      cameraStatus.textContent = t("js.join.camera.failed");
    }
    audioOnly.checked = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      cameraStatus.textContent += " " + t("js.join.mic.failed");
      return;
    }
  }
  if (stream.getVideoTracks().length > 0) {
    preview.srcObject = stream;
  } else {
    preview.hidden = true;
  }
  showLevel(stream);
}

function showLevel(stream) {
  audioContext = new AudioContext();
  const source = audioContext.createMediaStreamSource(stream);
  const analyser = audioContext.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const tick = () => {
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

const verdicts = {
  direct: (relays) => (relays.length ? t("js.join.direct.relay", { relays: relays.join(", ") }) : t("js.join.direct")),
  relay: (relays) => t("js.join.relay", { relays: relays.join(", ") }),
  failed: () => t("js.join.failed"),
  unknown: () => t("js.join.unknown"),
};

function showVerdict(result, relays) {
  networkStatus.textContent = verdicts[result](relays);
  networkStatus.dataset.result = result;
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
  const relays = [...found.relay];
  showVerdict(found.srflx ? "direct" : relays.length ? "relay" : "failed", relays);
}

checkDevices();
checkNetwork();
