// The call's chat and shared documents, and the column (wide screens) or
// sheet (phones) that shows the chat and the people in the call.
import { $, root, state, consultId, send } from "./callstate.js";
import { t, tNodes, formatSize, formatTime } from "./i18n.js";

export function addChat(m) {
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
