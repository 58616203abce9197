// Reading which path media takes, and how well, from RTCPeerConnection
// statistics.
import { t } from "./i18n.js";

// describeCandidate names how one candidate reaches the network: through
// the relay over UDP, TCP or TLS, or directly over UDP or TCP.
export function describeCandidate(c) {
  if (!c) return "";
  if (c.candidateType === "relay") return t("js.stats.relay", { protocol: (c.relayProtocol || c.protocol || "udp").toUpperCase() });
  return t("js.stats.direct", { protocol: (c.protocol || "udp").toUpperCase() });
}

// describePair names the selected candidate pair from both ends: whether
// this side, the other side (named other), both or neither go through a
// relay, and over what. A browser knows its own relay's protocol; of the
// other side it knows only that a relay answers for it.
export function describePair(local, remote, other) {
  if (!local) return "";
  const mine = local.candidateType === "relay";
  const theirs = remote && remote.candidateType === "relay";
  if (!mine && !theirs) return describeCandidate(local);
  const ours = mine ? t("js.stats.mine", { path: describeCandidate(local) }) : "";
  const others = theirs ? t("js.stats.theirs", { name: other }) : "";
  return ours && others ? t("js.stats.both", { mine: ours, theirs: others }) : ours || others;
}

// connectionStats returns {path, rttMs, loss, localType, remoteType,
// relayProtocol} for a peer connection to other (a name), or null before a
// pair is selected.
export async function connectionStats(pc, other) {
  const report = await pc.getStats();
  let pair = null;
  let lost = 0;
  let received = 0;
  let framesDecoded = 0;
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) {
      pair = report.get(s.selectedCandidatePairId);
    }
    if (s.type === "inbound-rtp") {
      lost += s.packetsLost || 0;
      received += s.packetsReceived || 0;
      if (s.kind === "video") framesDecoded += s.framesDecoded || 0;
    }
  });
  if (!pair) {
    report.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    });
  }
  if (!pair) return null;
  const local = report.get(pair.localCandidateId);
  const remote = report.get(pair.remoteCandidateId);
  return {
    path: describePair(local, remote, other || t("js.stats.other")),
    localType: local ? local.candidateType : "",
    remoteType: remote ? remote.candidateType : "",
    relayProtocol: local ? local.relayProtocol || "" : "",
    rttMs: pair.currentRoundTripTime !== undefined ? Math.round(pair.currentRoundTripTime * 1000) : null,
    loss: received + lost > 0 ? lost / (received + lost) : 0,
    framesDecoded,
  };
}
