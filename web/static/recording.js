// Recording on the call page: the host's Record button, the consent
// question every member answers for themselves, and the indicator everyone
// sees while the consult is recorded. The server decides: a recording runs
// only once every member agreed, and stops when anyone withdraws.

import { t } from "./i18n.js";

// Every text this module shows, from the page language's catalog.
const text = {
  record: t("js.recording.record"),
  cancelRequest: t("js.recording.cancel"),
  stopRecording: t("js.recording.stop"),
  stopping: t("js.recording.stopping"),
  indicator: t("js.recording.indicator"),
  indicatorStarting: t("js.recording.indicator.starting"),
  withdraw: t("js.recording.withdraw"),
  askTitle: t("js.recording.ask.title"),
  askTitleLobby: t("js.recording.ask.title.lobby"),
  askIntro: t("js.recording.ask.intro"),
  askIntroLobby: t("js.recording.ask.intro.lobby"),
  viewers: (who) => (who.length ? t("js.recording.viewers.more", { others: who.join(", ") }) : t("js.recording.viewers.only")),
  keptFor: (span) => t("js.recording.kept.for", { span }),
  keptUntilDeleted: t("js.recording.kept.until.deleted"),
  encryption: t("js.recording.encryption"),
  withdrawAnyTime: t("js.recording.withdraw.any.time"),
  agree: t("js.recording.agree"),
  decline: t("js.recording.decline"),
  roles: {
    admin: t("js.recording.role.admin"),
    clinician: t("js.recording.role.clinician"),
    auditor: t("js.recording.role.auditor"),
  },
  days: (count) => t("js.recording.days", { count }),
  hours: (count) => t("js.recording.hours", { count }),
  asking: t("js.recording.asking"),
  started: t("js.recording.started"),
  declinedLobby: t("js.recording.declined.lobby"),
  agreedLobby: t("js.recording.agreed.lobby"),
  // What the host's waiting room says of a guest's answer while recording.
  lobbyNotes: {
    asked: t("js.recording.lobby.asked"),
    agreed: t("js.recording.lobby.agreed"),
    declined: t("js.recording.lobby.declined"),
  },
  ended: {
    requested: t("js.recording.ended.requested"),
    declined: t("js.recording.ended.declined"),
    withdrawn: t("js.recording.ended.withdrawn"),
    "member-joined": t("js.recording.ended.member.joined"),
    ended: t("js.recording.ended.ended"),
    failed: t("js.recording.ended.failed"),
    "media-unavailable": t("js.recording.ended.media.unavailable"),
    unanswered: t("js.recording.ended.unanswered"),
    shutdown: t("js.recording.ended.shutdown"),
  },
  errors: {
    "recording-unavailable": t("js.recording.error.unavailable"),
    "recording-busy": t("js.recording.error.busy"),
    "not-recording": t("js.recording.error.not.recording"),
    "not-asked": t("js.recording.error.not.asked"),
    "consent-required": t("js.recording.error.consent.required"),
  },
};

const recordIcon = '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><circle cx="12" cy="12" r="7"/></svg>';

function retention(seconds) {
  if (!seconds) return text.keptUntilDeleted;
  const days = Math.round(seconds / 86400);
  return text.keptFor(days >= 1 ? text.days(days) : text.hours(Math.max(1, Math.round(seconds / 3600))));
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

// lobbyNote is what the host's waiting room says of a waiting guest's
// answer to the recording that runs, or "".
export function lobbyNote(waiting) {
  return text.lobbyNotes[waiting.recording] || "";
}

// Recording wires the call page's recording parts. send sends a protocol
// message; status shows a line in the page's status region.
export class Recording {
  constructor({ root, send, isHost, status }) {
    this.send = send;
    this.isHost = isHost;
    this.status = status;
    this.offer = null; // the server's recording policy, when it offers recording
    this.state = "off";
    this.request = "";
    this.admitted = false;
    this.answered = new Map(); // request id -> true/false, this tab's answer

    // The indicator: a red dot and a word over the video, for everyone.
    this.indicator = el("div", { class: "rec-indicator", id: "rec-indicator", hidden: true },
      el("span", { class: "rec-dot", "aria-hidden": "true" }), el("span", { class: "rec-label" }, text.indicator));
    this.withdrawButton = el("button", { type: "button", class: "small rec-withdraw", hidden: true }, text.withdraw);
    this.withdrawButton.addEventListener("click", () => this.answer(false));
    this.indicator.append(this.withdrawButton);
    document.getElementById("stage").append(this.indicator);
    // Changes are announced to screen readers from a region that is always
    // there, as the indicator itself comes and goes.
    this.announcer = el("p", { class: "visually-hidden", role: "status", "aria-live": "polite", id: "rec-announce" });
    root.append(this.announcer);

    // The host's button in the control bar.
    this.button = null;
    if (isHost) {
      this.button = el("button", { type: "button", id: "record", class: "ctl rec-button", "aria-pressed": "false", hidden: true });
      this.button.innerHTML = recordIcon;
      this.button.append(el("span", { class: "ctl-label" }, text.record));
      this.button.addEventListener("click", () => this.toggle());
      const controls = document.getElementById("controls");
      controls.insertBefore(this.button, document.getElementById("end-form") || null);
    }

    this.dialog = this.buildDialog();
    root.append(this.dialog);

    this.handlers = {
      recording: (m) => this.onState(m),
      "record-ask": (m) => this.ask(m.request),
    };
  }

  buildDialog() {
    const d = el("dialog", { class: "rec-dialog", id: "rec-dialog", role: "alertdialog", "aria-modal": "true",
      "aria-labelledby": "rec-title", "aria-describedby": "rec-body" });
    this.title = el("h2", { id: "rec-title" });
    this.body = el("div", { id: "rec-body" });
    this.yes = el("button", { type: "button", id: "rec-agree" }, text.agree);
    this.no = el("button", { type: "button", id: "rec-decline", class: "secondary" }, text.decline);
    this.yes.addEventListener("click", () => this.answer(true));
    this.no.addEventListener("click", () => this.answer(false));
    // Escape closes the question without consent: only a yes agrees.
    d.addEventListener("cancel", (e) => { e.preventDefault(); this.answer(false); });
    d.append(this.title, this.body, el("div", { class: "actions" }, this.yes, this.no));
    return d;
  }

  // welcome takes the server's offer: present only when the host may ask.
  welcome(m) {
    this.offer = m.recording || null;
    this.admitted = m.state === "admitted";
    if (this.button) this.button.hidden = !this.offer;
  }

  // admitted is called when the member comes into the call.
  enter() {
    this.admitted = true;
    if (this.dialog.open && this.state !== "on" && this.state !== "starting") this.close();
    this.render();
  }

  toggle() {
    this.send({ type: this.state === "off" ? "record-start" : "record-stop" });
  }

  ask(request) {
    this.request = request;
    const lobby = !this.admitted;
    this.title.textContent = lobby ? text.askTitleLobby : text.askTitle;
    const who = (this.offer?.viewers || []).map((r) => text.roles[r] || r);
    this.body.replaceChildren(...[lobby ? text.askIntroLobby : text.askIntro, text.viewers(who),
      retention(this.offer?.retentionSeconds), text.encryption, text.withdrawAnyTime].map((line) => el("p", {}, line)));
    if (!this.dialog.open) {
      this.returnFocus = document.activeElement;
      this.dialog.showModal();
    }
    // The safe answer has the focus: Enter never agrees by accident.
    this.no.focus();
  }

  answer(yes) {
    if (!this.request) return;
    this.answered.set(this.request, yes);
    this.send({ type: "record-consent", request: this.request, consent: yes });
    this.close();
    if (!this.admitted) this.status(yes ? text.agreedLobby : text.declinedLobby);
    this.render();
  }

  close() {
    if (!this.dialog.open) return;
    this.dialog.close();
    if (this.returnFocus && document.contains(this.returnFocus)) this.returnFocus.focus();
    this.returnFocus = null;
  }

  onState(m) {
    const was = this.state;
    this.state = m.state;
    if (m.request) this.request = m.request;
    if (m.state === "off") {
      this.close();
      if (m.reason) this.announce(text.ended[m.reason] || text.ended.requested);
    } else if (m.state === "on" && was !== "on") {
      this.announce(text.started);
    } else if (m.state === "asking" && was === "off" && this.isHost) {
      this.announce(text.asking);
    }
    this.render();
  }

  announce(line) {
    this.announcer.textContent = line;
    this.status(line);
  }

  render() {
    const recording = ["starting", "on", "stopping"].includes(this.state);
    this.indicator.hidden = !recording || !this.admitted;
    this.indicator.dataset.state = this.state;
    this.indicator.querySelector(".rec-label").textContent =
      this.state === "starting" ? text.indicatorStarting : this.state === "stopping" ? text.stopping : text.indicator;
    this.withdrawButton.hidden = this.isHost || this.state !== "on" || this.answered.get(this.request) === false;
    if (!this.button) return;
    const label = { off: text.record, asking: text.cancelRequest, stopping: text.stopping }[this.state] || text.stopRecording;
    this.button.querySelector(".ctl-label").textContent = label;
    this.button.setAttribute("aria-pressed", String(this.state !== "off"));
    this.button.disabled = this.state === "stopping";
  }

  // error shows a recording error in words; false for other errors.
  error(m) {
    const line = text.errors[m.code];
    if (!line) return false;
    this.status(line);
    return true;
  }

  // finish closes what is open when the page leaves the call.
  finish() {
    this.close();
    this.state = "off";
    this.indicator.hidden = true;
    if (this.button) this.button.hidden = true;
  }
}
