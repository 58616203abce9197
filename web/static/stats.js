// Reading which path media takes, and how well, from RTCPeerConnection
// statistics.

// describePath names the path of the selected candidate pair: direct or
// through the relay, over UDP, TCP or TLS.
export function describePath(local) {
  if (!local) return "";
  if (local.candidateType === "relay") {
    const proto = (local.relayProtocol || local.protocol || "udp").toUpperCase();
    return `relay ${proto}`;
  }
  return `direct ${(local.protocol || "udp").toUpperCase()}`;
}

// connectionStats returns {path, rttMs, loss, localType, relayProtocol}
// for a peer connection, or null before a pair is selected.
export async function connectionStats(pc) {
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
  return {
    path: describePath(local),
    localType: local ? local.candidateType : "",
    relayProtocol: local ? local.relayProtocol || "" : "",
    rttMs: pair.currentRoundTripTime !== undefined ? Math.round(pair.currentRoundTripTime * 1000) : null,
    loss: received + lost > 0 ? lost / (received + lost) : 0,
    framesDecoded,
  };
}
