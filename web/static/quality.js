// The connection indicator: bars from the worst connection's round trip
// and loss, the path and the figures behind the button, and the
// "reconnecting" notice.
import { $, state } from "./callstate.js";
import { connectionStats } from "./stats.js";
import { t, formatNumber } from "./i18n.js";

function qualityLevel(s) {
  const rtt = s.rttMs ?? 0;
  if (rtt < 200 && s.loss < 0.02) return 4;
  if (rtt < 400 && s.loss < 0.05) return 3;
  if (rtt < 800 && s.loss < 0.1) return 2;
  return 1;
}

const qualityWords = [0, 1, 2, 3, 4].map((l) => t(`js.call.quality.${l}`));

async function measure() {
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
  showReconnecting(down || state.wsDown);
}

setInterval(measure, 2000);

$("quality").addEventListener("click", () => {
  const details = $("quality-details");
  details.hidden = !details.hidden;
  $("quality").setAttribute("aria-expanded", String(!details.hidden));
});

export function showReconnecting(on) {
  $("reconnecting").hidden = !on || state.over || !state.admitted;
}
