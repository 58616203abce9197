// The patient's device check: camera preview, microphone level, a test
// sound and a connectivity check, with plain-language messages when a
// device is missing or blocked.
import { describePath } from "./stats.js";

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
    cameraStatus.textContent = "Camera and microphone work. You should see yourself above.";
  } catch (err) {
    if (err.name === "NotAllowedError") {
      cameraStatus.textContent =
        "The browser blocked the camera and microphone. Allow them in the address bar or the browser settings, then reload this page. You can also join with sound only.";
    } else if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
      cameraStatus.textContent = "No camera was found. You can join with sound only.";
    } else {
      cameraStatus.textContent = "The camera could not be started. You can join with sound only.";
    }
    audioOnly.checked = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      cameraStatus.textContent += " The microphone could not be started either; the clinician will not hear you.";
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

// checkNetwork gathers ICE candidates with short-lived relay credentials to
// learn whether the browser reaches the STUN and TURN servers, and which
// path a call will most likely take.
async function checkNetwork() {
  let config;
  try {
    const res = await fetch(location.pathname + "/connectivity", { credentials: "same-origin" });
    if (!res.ok) throw new Error(String(res.status));
    config = await res.json();
  } catch {
    networkStatus.textContent = "The connection check could not start. You can still join.";
    return;
  }
  const pc = new RTCPeerConnection({ iceServers: config.iceServers });
  pc.createDataChannel("check");
  const found = { host: false, srflx: false, relay: new Set() };
  const done = new Promise((resolve) => {
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate) return resolve();
      if (candidate.type === "host") found.host = true;
      if (candidate.type === "srflx") found.srflx = true;
      if (candidate.type === "relay") found.relay.add(describePath({ candidateType: "relay", relayProtocol: candidate.relayProtocol, protocol: candidate.protocol }));
    };
    setTimeout(resolve, 8000);
  });
  await pc.setLocalDescription(await pc.createOffer());
  await done;
  pc.close();
  const relays = [...found.relay];
  if (found.srflx || found.host) {
    networkStatus.textContent = "Your connection is ready: the call can go directly" + (relays.length ? `, with the relay (${relays.join(", ")}) as a fallback.` : ".");
  } else if (relays.length) {
    networkStatus.textContent = `Your network allows calls through the relay (${relays.join(", ")}).`;
  } else {
    networkStatus.textContent = "Your network may block video calls. Try another network (for example mobile data) if the call does not connect.";
  }
  networkStatus.dataset.result = relays.length || found.srflx ? "ok" : "blocked";
}

checkDevices();
checkNetwork();
