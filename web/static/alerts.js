// Alerts a clinician when someone waits in one of their consults, on any
// page that loads this module: the count per consult on the dashboard, the
// tab title "(1) waiting", a short sound and a desktop notification. The
// server sends counts only (GET /api/waiting, server-sent events).
import { t } from "./i18n.js";

const baseTitle = document.title;
const askedKey = "openconsult.alerts-asked";
let lastTotal = 0;
let audio = null;

function chime() {
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 660;
    gain.gain.value = 0.15;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.3);
  } catch {
    // No sound before the first click on some browsers; the title and
    // the notification still tell.
  }
}

function notify(total) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const n = new Notification(t("js.alerts.notify", { count: total }), {
    body: t("js.alerts.notify.body"),
    tag: "openconsult-waiting",
  });
  n.addEventListener("click", () => { window.focus(); n.close(); });
}

function show(ev) {
  for (const el of document.querySelectorAll("[data-waiting]")) {
    const n = ev.consults[el.dataset.waiting] || 0;
    el.textContent = n ? t("js.alerts.tag", { count: n }) : "";
    el.hidden = n === 0;
  }
  document.title = ev.total ? t("js.alerts.title", { count: ev.total, title: baseTitle }) : baseTitle;
  const summary = document.getElementById("waiting-summary");
  if (summary) {
    summary.textContent = ev.total === 0 ? "" : t("js.alerts.summary", { count: ev.total });
  }
  if (ev.total > lastTotal) {
    chime();
    notify(ev.total);
  }
  lastTotal = ev.total;
}

const source = new EventSource("/api/waiting");
source.addEventListener("waiting", (e) => {
  let ev;
  try { ev = JSON.parse(e.data); } catch { return; }
  show(ev);
});

// The permission is asked once, from a button: browsers want a click.
const offer = document.getElementById("alerts-offer");
if (offer && "Notification" in window && Notification.permission === "default" && !localStorage.getItem(askedKey)) {
  offer.hidden = false;
  document.getElementById("alerts-enable").addEventListener("click", async () => {
    localStorage.setItem(askedKey, "1");
    offer.hidden = true;
    await Notification.requestPermission();
  });
}
