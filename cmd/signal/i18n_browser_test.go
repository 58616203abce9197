package main

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
	"github.com/openconsult/openconsult/web/i18n"
)

// acceptLanguage makes the browser prefer langs (a comma-separated list, best
// first), as its user would in its settings: navigator.languages and the
// Accept-Language header (with the weights the browser adds) follow.
func acceptLanguage(t *testing.T, ctx context.Context, langs string) {
	t.Helper()
	ua, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "accept "+langs, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua, AcceptLanguage: langs})
		return err
	}))
}

// englishLeftovers lists what of the English catalog must not show on a
// page in lang: every English text that lang words differently, whole
// (placeholders removed) and, for the longer ones, each piece between
// placeholders. The languages' own names (the chooser) are left out.
func englishLeftovers(t *testing.T, lang string) []string {
	t.Helper()
	c, err := i18n.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	en, l := c.Lang(i18n.Fallback), c.Lang(lang)
	var own []string
	for _, key := range l.Keys() {
		m, _ := l.Message(key)
		own = append(own, m.Variants()...)
	}
	ownText := strings.Join(own, "\n")
	placeholder := regexp.MustCompile(`\{[a-z0-9_]+\}`)
	out := []string{} // none for English itself: its pages are checked for raw keys
	for _, key := range en.Keys() {
		if strings.HasPrefix(key, "meta.") {
			continue
		}
		m, _ := en.Message(key)
		for _, v := range m.Variants() {
			for _, piece := range placeholder.Split(v, -1) {
				piece = strings.TrimSpace(strings.Trim(piece, " ·:,.()—"))
				// Short pieces ("Chat", "ms") are checked as whole texts only.
				if (len(piece) >= 12 || !placeholder.MatchString(v) && len(piece) >= 3) && !strings.Contains(ownText, piece) && !slices.Contains(out, piece) {
					out = append(out, piece)
				}
			}
		}
	}
	return out
}

// untranslated returns the visible and hidden text of the page (every text
// node, text attribute and the title) that is an English leftover or a raw
// catalog key, one finding a line.
const untranslated = `((leftovers) => {
  const texts = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    // The audit log's entries are records, kept in the words they were written in.
    if (!n.parentElement.closest("script, style, #audit-entries tbody")) texts.push(n.textContent);
  }
  for (const el of document.querySelectorAll("[aria-label], [placeholder], [alt], [title]")) {
    for (const a of ["aria-label", "placeholder", "alt", "title"]) if (el.hasAttribute(a)) texts.push(el.getAttribute(a));
  }
  const out = [];
  for (const raw of texts) {
    const text = raw.replace(/\s+/g, " ").trim();
    if (!text) continue;
    if (/\b(js|call|join|err|common|layout|links|label)\.[a-z0-9]+(\.[a-z0-9]+)*\b/.test(text)) out.push("raw key: " + text);
    for (const l of leftovers) {
      if (text === l || (l.length >= 12 && text.includes(l))) out.push(JSON.stringify(l) + " in " + JSON.stringify(text.slice(0, 120)));
    }
  }
  return [...new Set(out)].join("\n");
})`

func checkTranslated(t *testing.T, ctx context.Context, page, lang string, leftovers []string) {
	t.Helper()
	list, _ := json.Marshal(leftovers)
	found, err := chromedp.Run(ctx, chromedp.Evaluate[string](untranslated+"("+string(list)+")"))
	if err != nil {
		t.Fatalf("%s (%s): %v", page, lang, err)
	}
	if found != "" {
		t.Errorf("%s in %s shows English or raw keys:\n%s", page, lang, found)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.lang + " " + document.documentElement.dir`))
	if err != nil || got != lang+" ltr" {
		t.Errorf("%s: <html> lang and dir %q, want %q", page, got, lang+" ltr")
	}
}

type shipped struct{ lang, accept, name string }

// shippedLanguages lists the catalog's languages, English last, each with
// what its browser asks for (a regional variant first) and a name.
func shippedLanguages(t *testing.T, names map[string]string) []shipped {
	t.Helper()
	c, err := i18n.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	var out []shipped
	for _, l := range c.Langs() {
		name := names[l.Tag]
		if name == "" {
			name = "Alex " + strings.ToUpper(l.Tag)
		}
		out = append(out, shipped{l.Tag, l.Tag + "-XX," + l.Tag, name})
	}
	return append(out[1:], out[0])
}

// TestBrowserPatientFlowInEveryLanguage walks a patient through the join
// page, the waiting room and the call once per language the catalog ships,
// their browser asking for it: every text comes from their language's
// catalog (none of the English one shows, no raw key), <html> carries lang
// and dir, the layout fits the phone and axe-core finds nothing. Then the
// chooser switches the language without scripts' help and the choice
// outlives the browser's preference.
func TestBrowserPatientFlowInEveryLanguage(t *testing.T) {
	axe := browsertest.LoadAxe(t)
	dir := t.TempDir()
	d := startDev(t, dir)
	defer d.stop()
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	createClinician(t, d, dir, admin, "dr.lang", "a long clinician passphrase")

	doc := browsertest.New(t)
	setViewport(t, doc, desktop)
	browserSignIn(t, doc, d, "dr.lang", "a long clinician passphrase")
	startConsultFromDashboard(t, doc)
	link := patientLink(t, doc)

	// Every language of the catalog, English last; names the patients give.
	names := map[string]string{"en": "Pat Example", "fr": "Camille Durand", "es": "Lucía Gómez"}
	patient := browsertest.New(t)
	setViewport(t, patient, phone)
	for _, tc := range shippedLanguages(t, names) {
		leftovers := englishLeftovers(t, tc.lang)
		acceptLanguage(t, patient, tc.accept)

		do(t, patient, "join page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#name")))
		waitTrue(t, patient, "device and network checks done", `document.getElementById("preview").videoWidth > 0 && !!document.getElementById("network-status").dataset.result`, 15*time.Second)
		checkTranslated(t, patient, "join page", tc.lang, leftovers)
		checkLayout(t, patient, "join ("+tc.lang+")", phone)
		axe.Check(t, patient, "join ("+tc.lang+")")

		joinAsPatient(t, patient, link, tc.name)
		waitTrue(t, patient, "waiting room told the clinician is there", `document.getElementById("lobby-wait").dataset.clinician === "true"`, 10*time.Second)
		checkTranslated(t, patient, "waiting room", tc.lang, leftovers)
		checkLayout(t, patient, "waiting room ("+tc.lang+")", phone)
		axe.Check(t, patient, "waiting room ("+tc.lang+")")

		waitTrue(t, doc, "clinician sees "+tc.name, `[...document.querySelectorAll("#lobby li.waiting")].some(li => li.textContent.includes(`+"`"+tc.name+"`"+`))`, 15*time.Second)
		do(t, doc, "admit", chromedp.Click(chromedp.CSS("#lobby li.waiting button.admit")))
		waitTrue(t, patient, "patient decodes the clinician's video", remoteVideoDecoding, 90*time.Second)
		waitTrue(t, patient, "connection bars", `document.getElementById("quality").dataset.level !== "0"`, 10*time.Second)
		do(t, patient, "connection details", chromedp.Click(chromedp.CSS("#quality")))
		waitTrue(t, patient, "path shown", `document.getElementById("path").textContent !== ""`, 5*time.Second)
		do(t, patient, "mute", chromedp.Click(chromedp.CSS("#mute")))
		waitTrue(t, patient, "settled", `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, 5*time.Second)
		checkTranslated(t, patient, "call", tc.lang, leftovers)
		checkLayout(t, patient, "call ("+tc.lang+")", phone)
		axe.Check(t, patient, "call ("+tc.lang+")")
		do(t, patient, "open chat", chromedp.Click(chromedp.CSS("#open-chat")))
		checkTranslated(t, patient, "chat sheet", tc.lang, leftovers)
		axe.Check(t, patient, "chat sheet ("+tc.lang+")")

		do(t, doc, "remove", chromedp.Click(chromedp.CSS(`#roster li button`)))
		waitTrue(t, patient, "patient removed", `document.getElementById("stage").hidden && document.getElementById("controls").hidden`, 15*time.Second)
		checkTranslated(t, patient, "after removal", tc.lang, leftovers)
	}

	// The chooser: a French browser picks Spanish on the join page; the
	// page comes back in Spanish and so does the next visit.
	acceptLanguage(t, patient, "fr-FR")
	do(t, patient, "join page in French", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#name")))
	waitTrue(t, patient, "French", `document.documentElement.lang === "fr" && document.querySelector("label[for=name]").textContent === "Votre nom"`, 5*time.Second)
	// The join page's checks move the footer as they finish; the choice is
	// made once they are done, and the button is pressed where it is, not
	// at coordinates taken before a shift (the form still submits natively).
	waitTrue(t, patient, "join page settled", `document.readyState === "complete" && !!document.getElementById("network-status").dataset.result`, 15*time.Second)
	do(t, patient, "choose Spanish",
		chromedp.SetValue(chromedp.CSS("#lang-select"), "es"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector(".lang-choose button").click()`),
	)
	waitTrue(t, patient, "back on the join page in Spanish", `document.documentElement.lang === "es" && location.pathname.startsWith("/j/") && document.querySelector("label[for=name]").textContent === "Su nombre"`, 10*time.Second)
	do(t, patient, "join page again", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#name")))
	waitTrue(t, patient, "Spanish remembered", `document.documentElement.lang === "es" && document.getElementById("lang-select").value === "es"`, 5*time.Second)
	checkTranslated(t, patient, "join page after choosing", "es", englishLeftovers(t, "es"))
}

// localizedTimes is empty when every server-rendered time shows in the
// page's language and the browser's zone and every size in kB or MB, else
// lists those still as the server wrote them.
const localizedTimes = `[...[...document.querySelectorAll("time[data-format]")].filter(el => el.textContent.endsWith("UTC")),
  ...[...document.querySelectorAll("data[data-format=size]")].filter(el => !/ [kM][Bo]$/.test(el.textContent))].map(el => el.outerHTML).join("\n")`

// TestBrowserStaffPagesInEveryLanguage shows the administrator's and the
// clinician's pages in every language the catalog ships: no English left
// (no raw key in English), times in the reader's locale, and axe-core finds
// nothing.
func TestBrowserStaffPagesInEveryLanguage(t *testing.T) {
	axe := browsertest.LoadAxe(t)
	dir := t.TempDir()
	d := startDev(t, dir)
	defer d.stop()
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	createClinician(t, d, dir, admin, "dr.staff", "a long clinician passphrase")

	doc := browsertest.New(t)
	setViewport(t, doc, desktop)
	browserSignIn(t, doc, d, "dr.staff", "a long clinician passphrase")
	startConsultFromDashboard(t, doc)
	callURL, err := chromedp.Run(doc, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	do(t, doc, "chat", chromedp.SendKeys(chromedp.CSS("#chat-text"), "Bonjour, buenos días"), chromedp.Click(chromedp.CSS("#chat-form button")))
	// A shared document of 1.5 MiB, whose size the record shows in the reader's words.
	waitTrue(t, doc, "document shared", `(async () => {
  const pdf = new Uint8Array(1536 * 1024);
  pdf.set(new TextEncoder().encode("%PDF-1.7\n"));
  const body = new FormData();
  body.append("file", new Blob([pdf], { type: "application/pdf" }), "scan.pdf");
  const res = await fetch(location.pathname + "/files", { method: "POST", body });
  return res.status === 201;
})()`, 10*time.Second)
	waitTrue(t, doc, "chat shown", `document.querySelectorAll("#chat-log li").length === 2`, 10*time.Second)
	// A recording, which the record page lists in the reader's words.
	consultID := strings.Trim(strings.TrimPrefix(strings.SplitN(strings.TrimPrefix(callURL, d.public), "?", 2)[0], "/consults/"), "/")
	storedRecordingAt(t, dir, consultID, "r_langs", recordedWebM(t, "vp8", 2*time.Second), time.Now().UTC().Add(-time.Hour))

	adm := browsertest.New(t)
	setViewport(t, adm, desktop)
	guest := browsertest.New(t)
	setViewport(t, guest, phone)
	adminSession(t, adm, d, admin)
	for _, l := range shippedLanguages(t, nil) {
		lang := l.lang
		leftovers := englishLeftovers(t, lang)
		for _, b := range []context.Context{doc, adm, guest} {
			acceptLanguage(t, b, l.accept)
		}
		visit := func(b context.Context, name, url, ready string) {
			t.Helper()
			do(t, b, name, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(ready)))
			waitTrue(t, b, name+" times localized", localizedTimes+` === ""`, 5*time.Second)
			checkTranslated(t, b, name, lang, leftovers)
			axe.Check(t, b, name+" ("+lang+")")
		}
		visit(guest, "home page", d.public+"/", "h1")
		visit(guest, "sign-in", d.public+"/signin", "#username")
		visit(guest, "password reset", d.public+"/reset", "#username")
		visit(guest, "not found", d.public+"/no/such/page", "h1")
		visit(adm, "users", d.public+"/admin/users", "#new-user")
		visit(adm, "audit", d.public+"/admin/audit", "#audit-entries")
		visit(adm, "account", d.public+"/account", "#account-username")
		visit(adm, "passkeys", d.public+"/account/passkeys", "#add-passkey")
		visit(adm, "password", d.public+"/account/password", "#current")
		visit(doc, "dashboard", d.public+"/consults", "#new-consult-button")
		visit(doc, "consult record", strings.TrimSuffix(callURL, "/")+"/record", "#transcript")
		wantSize := map[string]string{"en": "1.5 MB", "fr": "1,5 Mo", "es": "1,5 MB"}[lang]
		waitTrue(t, doc, "document size in "+lang, `document.querySelector("data[data-format=size]").textContent === "`+wantSize+`"`, 5*time.Second)
		visit(doc, "consult recordings", strings.TrimSuffix(callURL, "/")+"/recordings", "video")
		visit(doc, "call (clinician)", callURL, "#links-title")
	}
}
