// Who is in the call and who waits in the lobby. After a reconnection the
// room may be rebuilt one member at a time (a restarted server, another
// replica taking the consult over): a member missing from the first
// rosters keeps its connection and tile for a grace period, and goes only
// once it is confirmed gone (it was back in a roster since the
// reconnection, then left) or the grace period ends.
import { $, state, isHost, send, setStatus } from "./callstate.js";
import { t } from "./i18n.js";
import { lobbyNote } from "./recording.js";
import { tile, markTile, layoutTiles, remoteTileIds } from "./tiles.js";
import { peer, dropPeer, resync } from "./peers.js";

// rosterGraceMs is how long a member missing after a reconnection keeps its
// place on this page; the server keeps a dropped member's place for a
// minute by default.
const rosterGraceMs = 60000;

export function renderRoster(members) {
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
    if (m.id !== state.me) present(m);
  }
  for (const id of new Set([...state.peers.keys(), ...remoteTileIds()])) {
    if (state.roster.has(id)) continue;
    if (state.seen.get(id) === state.epoch) {
      // Seen since the reconnection, and gone now: it left, was removed
      // or timed out.
      forget(id);
    } else if (!state.missing.has(id)) {
      state.missing.set(id, Date.now());
    }
  }
  layoutTiles();
}

// present takes up a member the roster lists.
function present(m) {
  const back = state.missing.delete(m.id);
  state.seen.set(m.id, state.epoch);
  // One side of each pair opens the connection, so the first offers
  // never cross; the other side answers when the offer arrives.
  // Later renegotiation (screen sharing) may start from either side.
  if (state.me < m.id && state.route === "p2p") peer(m.id);
  markTile(tile(m.id, m.name, null, false), m);
  // Back after a reconnection: what was lost meanwhile is renegotiated.
  if (back && state.peers.has(m.id)) resync(state.peers.get(m.id));
}

function forget(id) {
  state.missing.delete(id);
  state.seen.delete(id);
  dropPeer(id);
}

// sweepMissing forgets the members still missing after the grace period.
export function sweepMissing() {
  const now = Date.now();
  for (const [id, since] of state.missing) {
    if (state.roster.has(id)) state.missing.delete(id);
    else if (now - since > rosterGraceMs) forget(id);
  }
}

// What the lobby says of a guest's connectivity check.
const checkNotes = {
  direct: t("js.call.check.direct"),
  relay: t("js.call.check.relay"),
  failed: t("js.call.check.failed"),
  unknown: t("js.call.check.unknown"),
};

export function renderLobby(waiting) {
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
  for (const w of waiting) list.append(waitingEntry(w));
  setStatus(t("js.call.waiting.count", { count: waiting.length }));
  const badge = $("waiting-badge");
  badge.textContent = String(waiting.length);
  badge.hidden = false;
  $("open-people").setAttribute("aria-label", t("js.call.people.waiting", { count: waiting.length }));
}

function waitingEntry(w) {
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
  return li;
}

export function button(label, onClick, cls) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}
