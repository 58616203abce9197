package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// crossOffers makes the page's offers cross the media server's on demand.
// Once window.crossNext is set to {act, refusalFirst}, the next offer
// from the server is held back: the page runs act (which starts a
// renegotiation of its own), waits until its own offer went to the
// server, then, with refusalFirst, until the server refused it, and only
// then gets the server's offer, which its own crossed on the way. Each
// crossing is kept in window.crossings (the id of the page's offer and
// its ICE username before), the server's refusals in window.refusals,
// and every text the status line showed in window.statusSeen.
const crossOffers = `(() => {
  window.statusSeen = [];
  window.refusals = [];
  window.crossings = [];
  window.crossNext = null;
  const offers = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {
      const m = JSON.parse(data);
      if (m.type === "offer" && m.to === "sfu") offers.push(m.id);
    } catch {}
    return send.apply(this, arguments);
  };
  const until = async (f) => {
    for (let i = 0; i < 300 && !f(); i++) await new Promise((r) => setTimeout(r, 50));
    return f();
  };
  const ufrag = () => (window.openConsult.mediaServer()?.localDescription?.sdp.match(/a=ice-ufrag:(\S+)/) || [])[1];
  const handler = Object.getOwnPropertyDescriptor(WebSocket.prototype, "onmessage");
  Object.defineProperty(WebSocket.prototype, "onmessage", {
    configurable: true,
    get() { return handler.get.call(this); },
    set(h) {
      handler.set.call(this, (e) => {
        let m = {};
        try { m = JSON.parse(e.data); } catch {}
        if (m.type === "error") window.refusals.push(m);
        const c = window.crossNext;
        if (!c || m.type !== "offer" || m.from !== "sfu") return h(e);
        window.crossNext = null;
        (async () => {
          const crossing = { ufrag: ufrag(), ref: null, refusedFirst: false };
          window.crossings.push(crossing);
          const before = offers.length;
          c.act();
          if (await until(() => offers.length > before)) crossing.ref = offers[offers.length - 1];
          if (crossing.ref && c.refusalFirst) crossing.refusedFirst = await until(() => window.refusals.some((r) => r.ref === crossing.ref));
          h(e);
        })();
      });
    },
  });
  document.addEventListener("DOMContentLoaded", () => {
    const s = document.getElementById("status");
    if (s) new MutationObserver(() => window.statusSeen.push(s.textContent)).observe(s, { childList: true, characterData: true, subtree: true });
  });
})()`

// crossingSettledJS is true when the page's last crossing is over: its
// offer was refused by the server (the crossing did happen), the refusal
// was dealt with, and the media server connection is stable and connected
// with nothing of ours left unanswered.
const crossingSettledJS = `(() => {
  const c = window.crossings[window.crossings.length - 1];
  const link = window.openConsult.state.sfu;
  if (!c || !c.ref || !link) return false;
  const refused = window.refusals.some((r) => r.ref === c.ref && r.code === "bad-sdp");
  return refused && !link.crossed.has(c.ref) && !link.offers.has(c.ref) && link.offers.size === 0 &&
    link.pc.signalingState === "stable" && link.pc.connectionState === "connected";
})()`

// iceRestartedJS is true when the media server connection's ICE username
// is no longer the one before the page's last crossing.
const iceRestartedJS = `(() => {
  const c = window.crossings[window.crossings.length - 1];
  const sdp = window.openConsult.mediaServer()?.localDescription?.sdp || "";
  const now = (sdp.match(/a=ice-ufrag:(\S+)/) || [])[1];
  return !!c && !!c.ufrag && !!now && now !== c.ufrag && !window.openConsult.state.sfu.restarting;
})()`

// memberID returns the member id of the page, as a JavaScript string.
func memberID(t *testing.T, page context.Context, name string) string {
	t.Helper()
	id, err := chromedp.Run(page, chromedp.Evaluate[string](`window.openConsult.state.me`))
	if err != nil || id == "" {
		t.Fatalf("%s's member id %q: %v", name, id, err)
	}
	return jsString(id)
}

// noRefusalShown fails the test if the page's status line ever showed a
// refusal.
func noRefusalShown(t *testing.T, page context.Context, name string) {
	t.Helper()
	seen, err := chromedp.Run(page, chromedp.Evaluate[[]string](`window.statusSeen`))
	if err != nil {
		t.Fatalf("%s's status line: %v", name, err)
	}
	for _, s := range seen {
		if strings.Contains(s, "bad-sdp") {
			t.Errorf("%s's status line showed %q", name, s)
		}
	}
}

// TestBrowserOfferCrossingTheMediaServersIsSettledQuietly runs a consult
// of three on the media server, two members without a camera, and makes
// a member's offer cross the server's: the server refuses the member's,
// the status line says nothing of it, and both renegotiations complete.
// First Nico turns the camera on the moment the server offers him Nia's
// camera (a new section; the refusal arrives before the server's offer),
// then Nia restarts ICE the moment the server offers her the end of
// Nico's camera (the refusal arrives after the server's offer).
func TestBrowserOfferCrossingTheMediaServersIsSettledQuietly(t *testing.T) {
	d, doc := startConsult(t, "dr.glare", false, "-sfu-min-participants", "2")
	defer d.stop()
	second := extraLink(t, doc, "family")
	first := patientLink(t, doc)
	nico := joinWithoutCamera(t, d, first, "Nico Nocamera", true, crossOffers)
	admit(t, doc, "Nico Nocamera")
	nia := joinWithoutCamera(t, d, second, "Nia Nocamera", true, crossOffers)
	admit(t, doc, "Nia Nocamera")
	for name, ctx := range map[string]context.Context{"Nico": nico, "Nia": nia} {
		waitTrue(t, ctx, name+" decodes the clinician through the media server", decodingFromEveryoneViaServer+`(1)`, 90*time.Second)
	}
	nicoID, niaID, docID := memberID(t, nico, "Nico"), memberID(t, nia, "Nia"), memberID(t, doc, "the clinician")
	camera := func(id string) string { return fmt.Sprintf("%s(%s, false)", tileDecodesJS, id) }
	card := func(id string) string { return fmt.Sprintf("%s(%s)", tileWithoutPictureJS, id) }

	// A section added as the server offers; refused before the server's offer arrives.
	do(t, nico, "Nico's next offer crosses the server's",
		chromedp.Evaluate[chromedp.Void](`window.crossNext = { act: () => document.getElementById("camera").click(), refusalFirst: true }`))
	do(t, nia, "Nia turns her camera on", chromedp.Evaluate[chromedp.Void](`document.getElementById("camera").click()`))
	waitTrue(t, nico, "Nico's crossing settled", crossingSettledJS, 60*time.Second)
	if first, err := chromedp.Run(nico, chromedp.Evaluate[bool](`window.crossings[0].refusedFirst`)); err != nil || !first {
		t.Errorf("the server's refusal of Nico's offer did not come before its own offer (%v)", err)
	}
	waitTrue(t, nico, "Nico decodes Nia's camera (the server's renegotiation)", camera(niaID), 60*time.Second)
	for name, ctx := range map[string]context.Context{"clinician": doc, "Nia": nia} {
		waitTrue(t, ctx, name+" decodes Nico's camera (Nico's renegotiation)", camera(nicoID), 60*time.Second)
	}
	waitTrue(t, doc, "the clinician decodes Nia's camera", camera(niaID), 60*time.Second)

	// An ICE restart as the server offers; refused after the server's offer arrived.
	do(t, nia, "Nia's next offer crosses the server's",
		chromedp.Evaluate[chromedp.Void](`window.crossNext = { act: () => { const l = window.openConsult.state.sfu; l.restartedAt = 0; l.restart(); }, refusalFirst: false }`))
	do(t, nico, "Nico turns his camera off", chromedp.Evaluate[chromedp.Void](`document.getElementById("camera").click()`))
	waitTrue(t, nia, "Nia's crossing settled", crossingSettledJS, 60*time.Second)
	waitTrue(t, nia, "Nia's connection to the media server restarted ICE", iceRestartedJS, 30*time.Second)
	waitTrue(t, nia, "Nico's picture leaves Nia's tile (the server's renegotiation)", card(nicoID), 30*time.Second)
	waitTrue(t, nia, "Nia still decodes the clinician", camera(docID), 60*time.Second)
	waitTrue(t, doc, "Nico's picture leaves the clinician's tile", card(nicoID), 30*time.Second)
	waitTrue(t, doc, "the clinician still decodes Nia", camera(niaID), 60*time.Second)

	for name, ctx := range map[string]context.Context{"Nico": nico, "Nia": nia} {
		noRefusalShown(t, ctx, name)
	}
}
