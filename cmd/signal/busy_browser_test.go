package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// busyOnce has the page's first description of the kind named (an answer
// to the media server with "sfu", else an offer or answer to a member)
// dropped on its way to the server, which then refuses it with busy as
// when its budget for large messages is full: without ref. The dropped
// description is kept in window.busy.dropped, every description sent in
// window.busy.sent, and every text the status line showed in
// window.statusSeen.
const busyOnce = `((to) => {
  window.statusSeen = [];
  window.busy = { dropped: null, sent: [] };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    let m = {};
    try { m = JSON.parse(data); } catch {}
    if (!m.sdp) return send.apply(this, arguments);
    window.busy.sent.push({ id: m.id, sdp: m.sdp });
    const target = to === "sfu" ? m.to === "sfu" && m.type === "answer" : m.to !== "sfu";
    if (!target || window.busy.dropped) return send.apply(this, arguments);
    window.busy.dropped = { id: m.id, sdp: m.sdp };
    const refusal = { type: "error", code: "busy", message: "the server is busy; send the message again in a moment" };
    setTimeout(() => this.onmessage?.({ data: JSON.stringify(refusal) }), 50);
  };
  document.addEventListener("DOMContentLoaded", () => {
    const s = document.getElementById("status");
    if (s) new MutationObserver(() => window.statusSeen.push(s.textContent)).observe(s, { childList: true, characterData: true, subtree: true });
  });
})`

// resentJS is true when the dropped description went to the server again,
// under another id.
const resentJS = `(() => {
  const d = window.busy.dropped;
  return !!d && window.busy.sent.some((s) => s.sdp === d.sdp && s.id !== d.id);
})()`

// TestBrowserBusyDescriptionIsSentAgain has the server refuse a member's
// description with busy: the page sends it again after a moment, the
// call comes up, and the status line never shows a refusal. On the media
// server (three members) the member's first answer to the server's offer
// is refused; peer to peer (two), its first description to the clinician,
// which a crossing offer may supersede before it is sent again.
func TestBrowserBusyDescriptionIsSentAgain(t *testing.T) {
	for _, tc := range []struct {
		name     string
		onServer bool
	}{
		{"an answer to the media server", true},
		{"a description to a member", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra []string
			if tc.onServer {
				extra = []string{"-sfu-min-participants", "2"}
			}
			d, doc := startConsult(t, "dr.busy", false, extra...)
			defer d.stop()
			first := patientLink(t, doc)
			viewers := map[string]context.Context{"clinician": doc}
			if tc.onServer {
				second := extraLink(t, doc, "family")
				patient := joinAsGuest(t, second, "Pat Example")
				admit(t, doc, "Pat Example")
				viewers["patient"] = patient
			}
			to := `"member"`
			if tc.onServer {
				to = `"sfu"`
			}
			mia := joinWithoutCamera(t, d, first, "Mia Busy", true, busyOnce+"("+to+")")
			admit(t, doc, "Mia Busy")
			waitTrue(t, mia, "a description of Mia's was refused as busy", `!!window.busy.dropped`, 60*time.Second)
			if tc.onServer {
				waitTrue(t, mia, "Mia decodes both others through the media server", decodingFromEveryoneViaServer+`(2)`, 90*time.Second)
				waitTrue(t, mia, "Mia's refused answer went to the server again", resentJS, 5*time.Second)
			} else {
				waitTrue(t, mia, "Mia decodes the clinician directly", remoteVideoDecoding, 90*time.Second)
			}
			id := memberID(t, mia, "Mia")
			for name, ctx := range viewers {
				hearsMia(t, map[string]context.Context{name: ctx}, id, tc.onServer, true)
			}
			seen, err := chromedp.Run(mia, chromedp.Evaluate[[]string](`window.statusSeen`))
			if err != nil {
				t.Fatalf("Mia's status line: %v", err)
			}
			for _, s := range seen {
				if strings.Contains(s, "busy") || strings.Contains(s, "refused") {
					t.Errorf("Mia's status line showed %q", s)
				}
			}
		})
	}
}
