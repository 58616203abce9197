// Recording on the call page: the host's Record button, the consent
// question every member answers for themselves, and the indicator everyone
// sees while the consult is recorded. The server decides: a recording runs
// only once every member agreed, and stops when anyone withdraws.

// Every text this module shows.
const text = {
  record: "Record",
  cancelRequest: "Cancel recording request",
  stopRecording: "Stop recording",
  stopping: "Stopping recording…",
  indicator: "Recording",
  indicatorStarting: "Recording starts…",
  withdraw: "Stop recording me",
  askTitle: "Record this consultation?",
  askTitleLobby: "This consultation is being recorded",
  askIntro: "Your clinician would like to record this consultation, sound and video. It is recorded only if everyone in it agrees.",
  askIntroLobby: "This consultation is being recorded, sound and video. You can join it only if you agree to be recorded. If you do not agree, you will wait here until the recording stops.",
  viewers: (who) => `Who can watch it: your clinician${who.length ? `, and ${who.join(", ")}` : ""}.`,
  keptFor: (span) => `It is kept for ${span}, then deleted.`,
  keptUntilDeleted: "It is kept until the clinic deletes it.",
  encryption: "While it is recorded the call goes through the clinic's media server. A call between two people is then no longer end-to-end encrypted.",
  withdrawAnyTime: "You can stop the recording of yourself at any time: it then stops for everyone.",
  agree: "I agree to be recorded",
  decline: "Do not record",
  roles: { admin: "the clinic's administrators", clinician: "other clinicians of the clinic", auditor: "the clinic's auditors" },
  days: (n) => (n === 1 ? "1 day" : `${n} days`),
  hours: (n) => (n === 1 ? "1 hour" : `${n} hours`),
  asking: "Waiting for everyone to agree to the recording…",
  started: "Recording started. Everyone in the call has agreed.",
  declinedLobby: "You did not agree to be recorded. You will be let in when the recording stops, or you can close this page.",
  agreedLobby: "Thank you. Your clinician will let you in.",
  // What the host's waiting room says of a guest's answer while recording.
  lobbyNotes: {
    asked: "(asked to agree to the recording)",
    agreed: "(agreed to be recorded)",
    declined: "(did not agree to be recorded: stop the recording to let them in)",
  },
  ended: {
    requested: "Recording stopped.",
    declined: "Recording was not started: a participant did not agree.",
    withdrawn: "Recording stopped: a participant withdrew their agreement.",
    "member-joined": "Recording stopped: someone joined who has not agreed to it.",
    ended: "Recording stopped: the consultation ended.",
    failed: "Recording stopped because of a problem on the server. What was recorded so far is kept.",
    "media-unavailable": "Recording could not start: the media server could not be reached.",
    unanswered: "Recording was not started: not everyone answered.",
    shutdown: "Recording stopped: the server is restarting.",
  },
  errors: {
    "recording-unavailable": "Recording is not available for this consultation.",
    "recording-busy": "A recording is already requested or running.",
    "not-recording": "There is no recording to stop.",
    "not-asked": "That recording request is no longer open.",
    "consent-required": "This person has not agreed to be recorded yet. They can come in once they agree, or when the recording stops.",
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
      retention(this.offer?.retentionSeconds), text.encryption, text.withdrawAnyTime].map((t) => el("p", {}, t)));
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
