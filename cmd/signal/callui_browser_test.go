package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// viewport sizes every patient page and the call page must fit.
var (
	phone   = [2]int64{390, 844}
	desktop = [2]int64{1366, 768}
)

func setViewport(t *testing.T, ctx context.Context, size [2]int64) {
	t.Helper()
	opts := []chromedp.EmulateViewportOption{}
	if size == phone {
		opts = append(opts, chromedp.EmulateScale(3), chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	do(t, ctx, "viewport", chromedp.EmulateViewport(size[0], size[1], opts...))
}

// layoutProblems lists what does not fit the viewport: horizontal
// scrolling, a visible control outside the viewport's width and, for the
// fixed call layout, any control of the control bar outside its height.
const layoutProblems = `(() => {
  const out = [];
  const vw = document.documentElement.clientWidth, vh = window.innerHeight;
  if (document.documentElement.scrollWidth > vw + 1) out.push("horizontal scrolling: " + document.documentElement.scrollWidth + " > " + vw);
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " + JSON.stringify((el.textContent || el.getAttribute("aria-label") || "").trim().slice(0, 30));
  const inCall = document.querySelector(".call.in-call") !== null;
  for (const el of document.querySelectorAll("button, a[href], input, select, textarea, label.button, [tabindex='0']")) {
    if (el.matches(".skip, .visually-hidden") || !el.checkVisibility({ visibilityProperty: true })) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (r.left < -0.5 || r.right > vw + 0.5) out.push(name(el) + " outside the width: " + Math.round(r.left) + ".." + Math.round(r.right) + " of " + vw);
    const fixed = inCall && (el.closest("#controls") || el.id === "quality");
    if (fixed && (r.top < -0.5 || r.bottom > vh + 0.5)) out.push(name(el) + " outside the height: " + Math.round(r.top) + ".." + Math.round(r.bottom) + " of " + vh);
    if (r.height > vh) out.push(name(el) + " taller than the viewport");
  }
  return out.join("\n");
})()`

// videoCoverage returns the share of the viewport the remote picture
// covers (as displayed, after object-fit) and whether the self-view is
// smaller than it.
const videoCoverage = `(() => {
  const vw = document.documentElement.clientWidth, vh = window.innerHeight;
  const shown = (v) => {
    const r = v.getBoundingClientRect();
    let w = r.width, h = r.height;
    if (getComputedStyle(v).objectFit === "contain" && v.videoWidth > 0) {
      const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
      w = v.videoWidth * s; h = v.videoHeight * s;
    }
    const left = Math.max(0, r.left + (r.width - w) / 2), top = Math.max(0, r.top + (r.height - h) / 2);
    const right = Math.min(vw, r.left + (r.width + w) / 2), bottom = Math.min(vh, r.top + (r.height + h) / 2);
    return Math.max(0, right - left) * Math.max(0, bottom - top);
  };
  const remote = document.querySelector("figure.tile:not(.self) video");
  const self = document.querySelector("figure.tile.self");
  if (!remote || !self) return "no remote or no self tile";
  const sr = self.getBoundingClientRect();
  const cover = shown(remote) / (vw * vh);
  return JSON.stringify({ cover, selfSmaller: sr.width * sr.height < shown(remote) && sr.width > 0 });
})()`

func checkLayout(t *testing.T, ctx context.Context, page string, size [2]int64) {
	t.Helper()
	problems, err := chromedp.Run(ctx, chromedp.Evaluate[string](layoutProblems))
	if err != nil {
		t.Fatalf("layout of %s: %v", page, err)
	}
	if problems != "" {
		t.Errorf("layout of %s at %dx%d:\n%s", page, size[0], size[1], problems)
	}
	screenshot(t, ctx, fmt.Sprintf("%s-%dx%d", page, size[0], size[1]))
}

// screenshot keeps a picture of the page under the system's temporary
// directory when OPENCONSULT_SCREENSHOTS is set, to look at a layout.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("OPENCONSULT_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(dir+"/"+strings.NewReplacer(" ", "-", "/", "_").Replace(name)+".png", png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// controlsHidden is true when no call control shows.
const controlsHidden = `(() => {
  const bar = document.getElementById("controls");
  return getComputedStyle(bar).display === "none" && [...bar.querySelectorAll("button")].every(b => !b.checkVisibility());
})()`

// adminSession gives the browser the administrator's session cookie from
// the HTTP client that signed in.
func adminSession(t *testing.T, ctx context.Context, d *devServer, admin *http.Client) {
	t.Helper()
	u, _ := url.Parse(d.public)
	yes := true
	for _, c := range admin.Jar.Cookies(u) {
		params := network.SetCookieParams{Name: c.Name, Value: c.Value, URL: d.public + "/", Path: "/", Secure: &yes, HTTPOnly: &yes, SameSite: network.CookieSameSiteStrict}
		do(t, ctx, "session cookie", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.SetCookie, params)
			return err
		}))
	}
}

// watchNotifications grants the page's origin the notification permission
// and records the title of every notification the page shows (the real
// Notification is still created).
func watchNotifications(t *testing.T, ctx context.Context, d *devServer) {
	t.Helper()
	grant := browser.SetPermissionParams{Permission: &browser.PermissionDescriptor{Name: "notifications"}, Setting: browser.PermissionSettingGranted, Origin: d.public}
	script := page.AddScriptToEvaluateOnNewDocumentParams{Source: `(() => {
  window.seenNotifications = [];
  const Real = window.Notification;
  window.Notification = class extends Real {
    constructor(title, options) { super(title, options); window.seenNotifications.push(title); }
  };
})()`}
	do(t, ctx, "watch notifications", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, browser.SetPermission, grant); err != nil {
			return fmt.Errorf("grant: %w", err)
		}
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, script)
		return err
	}))
}

// writeLogo writes a 64×32 PNG logo under dir and returns its path.
func writeLogo(t *testing.T, dir string) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 32))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{0x0d, 0x3b, 0x66, 0xff}}, image.Point{}, draw.Src)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "logo.png")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// joinButtonInView is true when the join page's Join button shows without scrolling.
const joinButtonInView = `(() => {
  const r = document.getElementById("join-button").getBoundingClientRect();
  return window.scrollY === 0 && r.top >= 0 && r.bottom <= window.innerHeight && r.right <= document.documentElement.clientWidth;
})()`

// setMediaPermission allows or blocks the camera or microphone for the
// site in the browser of ctx, as the patient would in its settings.
func setMediaPermission(t *testing.T, ctx context.Context, d *devServer, name string, setting browser.PermissionSetting) {
	t.Helper()
	params := browser.SetPermissionParams{Permission: &browser.PermissionDescriptor{Name: name}, Setting: setting, Origin: d.public}
	do(t, ctx, name+" "+string(setting), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, browser.SetPermission, params)
		return err
	}))
}

// joinAsPatient opens the link on the phone and joins under name.
func joinAsPatient(t *testing.T, ctx context.Context, link, name string) {
	t.Helper()
	do(t, ctx, "patient join",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), name),
		chromedp.Click(chromedp.CSS("#join-button")),
		chromedp.WaitVisible(chromedp.CSS("#lobby-wait")),
	)
}

// TestBrowserCallLayoutAndAccessibility walks a patient on a phone and a
// clinician on a desktop through the waiting room and a call: the call
// controls show only in the call (not in the waiting room, nor after
// "denied", "removed" or "ended"), every page fits both sizes, the remote
// picture fills most of the phone, and axe-core finds no violation on any
// page in either colour scheme.
func TestBrowserCallLayoutAndAccessibility(t *testing.T) {
	axe := browsertest.LoadAxe(t)
	dir := t.TempDir()
	d := startDev(t, dir, "-institution", "Clinique du Lac", "-institution-logo", writeLogo(t, dir))
	defer d.stop()
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	createClinician(t, d, dir, admin, "dr.layout", "a long clinician passphrase")

	// The administrator's pages, in the browser that is the patient's later.
	// The patient's browser asks for the camera and microphone as a real
	// one does, by the site's permissions (no automatic yes): both are
	// allowed here, and the microphone blocked later.
	patient := browsertest.New(t, chromedp.Flag("use-fake-ui-for-media-stream", false))
	setMediaPermission(t, patient, d, "camera", browser.PermissionSettingGranted)
	setMediaPermission(t, patient, d, "microphone", browser.PermissionSettingGranted)
	setViewport(t, patient, desktop)
	do(t, patient, "sign-in page", chromedp.Navigate(d.public+"/signin"), chromedp.WaitVisible(chromedp.CSS("#username")))
	axe.Check(t, patient, "sign-in")
	adminSession(t, patient, d, admin)
	// Each staff page has the header navigation with the current page
	// marked and sign-out, and fits a phone (the users table stacks).
	for _, size := range [][2]int64{desktop, phone} {
		setViewport(t, patient, size)
		for _, page := range []string{"/admin/users", "/admin/audit", "/account"} {
			do(t, patient, page, chromedp.Navigate(d.public+page), chromedp.WaitVisible(chromedp.CSS("h1")))
			waitTrue(t, patient, page+" header", `document.querySelector("header nav a[aria-current=page]").getAttribute("href") === "`+page+
				`" && document.querySelectorAll("header nav a").length === 3 && document.querySelector("header nav form[action='/signout'] button").checkVisibility()`, 5*time.Second)
			if page == "/admin/audit" {
				waitTrue(t, patient, "each audit filter's label sits above its field", `document.querySelectorAll(".filters .field").length === 6 && [...document.querySelectorAll(".filters .field")].every(f => {
  const l = f.querySelector("label").getBoundingClientRect(), i = f.querySelector("input").getBoundingClientRect();
  return Math.abs(l.left - i.left) < 1 && l.bottom <= i.top + 1;
})`, 5*time.Second)
			}
			checkLayout(t, patient, page, size)
			axe.Check(t, patient, page)
		}
	}
	setViewport(t, patient, desktop)
	do(t, patient, "forget the administrator", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return err
	}))

	// The clinician starts a consult and goes back to the dashboard, where
	// the waiting-patient alert must reach them.
	doc := browsertest.New(t)
	setViewport(t, doc, desktop)
	watchNotifications(t, doc, d)
	browserSignIn(t, doc, d, "dr.layout", "a long clinician passphrase")
	// The name patients see, set on the account page.
	do(t, doc, "account page", chromedp.WaitVisible(chromedp.CSS("#new-consult-button")),
		chromedp.Navigate(d.public+"/account"), chromedp.WaitVisible(chromedp.CSS("#display-name")),
		chromedp.SendKeys(chromedp.CSS("#display-name"), "Dr. Ana Layout"),
		chromedp.Click(chromedp.CSS("form[action='/account/profile'] button")))
	waitTrue(t, doc, "display name saved", `location.search === "?changed=profile" && document.getElementById("display-name").value === "Dr. Ana Layout"`, 10*time.Second)
	do(t, doc, "dashboard", chromedp.Navigate(d.public+"/consults"))
	startConsultFromDashboard(t, doc)
	link := patientLink(t, doc)
	callURL, err := chromedp.Run(doc, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	do(t, doc, "dashboard", chromedp.Navigate(d.public+"/consults"), chromedp.WaitVisible(chromedp.CSS("h1")))
	axe.Check(t, doc, "dashboard")
	setViewport(t, patient, phone)

	// Join page and waiting room, on both sizes.
	do(t, patient, "join page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#name")))
	waitTrue(t, patient, "camera preview", `document.getElementById("preview").videoWidth > 0`, 10*time.Second)
	waitTrue(t, patient, "join page shows the institution", `document.getElementById("institution").textContent === "Clinique du Lac" && document.querySelector("header img.logo").naturalWidth === 64`, 5*time.Second)
	waitTrue(t, patient, "join page names the clinician", `document.getElementById("host").textContent.includes("Dr. Ana Layout")`, 5*time.Second)
	// The verdict in plain words; the path and transports behind "details".
	waitTrue(t, patient, "connection verdict without network words", `!!document.getElementById("network-status").dataset.result &&
  !/\b(UDP|TCP|TLS|STUN|TURN|[Rr]elay)\b/.test(document.getElementById("network-status").textContent) &&
  document.querySelector("details#network-details").checkVisibility() && !document.getElementById("network-detail-list").checkVisibility() &&
  /STUN|TURN/.test(document.getElementById("network-detail-list").textContent)`, 15*time.Second)
	checkLayout(t, patient, "join", phone)
	waitTrue(t, patient, "Join visible without scrolling on the phone", joinButtonInView, 5*time.Second)
	axe.Check(t, patient, "join")
	setViewport(t, patient, desktop)
	checkLayout(t, patient, "join", desktop)
	waitTrue(t, patient, "Join visible without scrolling on the desktop", joinButtonInView, 5*time.Second)
	setViewport(t, patient, phone)

	// The microphone blocked: one message, this browser's explanation and
	// a retry, which works once the microphone is allowed.
	setMediaPermission(t, patient, d, "microphone", browser.PermissionSettingDenied)
	do(t, patient, "join page, microphone blocked", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#name")))
	waitTrue(t, patient, "microphone blocked explained", `(() => {
  const s = document.getElementById("camera-status"), help = document.getElementById("device-help");
  return s.dataset.devices === "camera nomic" && s.textContent.includes("blocked the microphone") && !s.textContent.includes("work") &&
    help.checkVisibility() && help.textContent.startsWith("In Chrome or Edge") && document.getElementById("device-retry").checkVisibility();
})()`, 10*time.Second)
	checkLayout(t, patient, "join, microphone blocked", phone)
	axe.Check(t, patient, "join, microphone blocked")
	setMediaPermission(t, patient, d, "microphone", browser.PermissionSettingGranted)
	do(t, patient, "retry", chromedp.Click(chromedp.CSS("#device-retry")))
	waitTrue(t, patient, "retry finds the microphone", `document.getElementById("camera-status").dataset.devices === "camera mic" && !document.getElementById("device-help").checkVisibility() && !document.getElementById("device-retry").checkVisibility()`, 10*time.Second)
	// The first patient goes on without a microphone.
	setMediaPermission(t, patient, d, "microphone", browser.PermissionSettingDenied)

	admitted := func(name string) {
		t.Helper()
		waitTrue(t, doc, "clinician sees "+name, `[...document.querySelectorAll("#lobby li.waiting")].some(li => li.textContent.includes(`+"`"+name+"`"+`))`, 15*time.Second)
		do(t, doc, "admit", chromedp.Click(chromedp.CSS("#lobby li.waiting button.admit")))
		waitTrue(t, patient, "patient admitted", `!document.getElementById("stage").hidden`, 15*time.Second)
	}
	expel := func(action, wantStatus string) {
		t.Helper()
		waitTrue(t, patient, "patient told: "+action, `document.getElementById("status").textContent.includes(`+"`"+wantStatus+"`"+`)`, 15*time.Second)
		waitTrue(t, patient, "no call controls after "+action, controlsHidden, 5*time.Second)
		checkLayout(t, patient, "after "+action, phone)
	}

	joinAsPatient(t, patient, link, "Pat Denied")
	waitTrue(t, patient, "no call controls in the waiting room", controlsHidden, 5*time.Second)
	// No clinician is connected: the waiting room does not claim they were told.
	waitTrue(t, patient, "waiting room says the clinician will see", `document.getElementById("lobby-wait").dataset.clinician === "false" && !document.getElementById("lobby-text").textContent.includes("has been told")`, 10*time.Second)
	// The clinician on the dashboard: count, title and a desktop notification.
	waitTrue(t, doc, "dashboard title says one waiting", `document.title.startsWith("(1) waiting")`, 10*time.Second)
	waitTrue(t, doc, "dashboard counts the waiting patient", `[...document.querySelectorAll("[data-waiting]")].some(el => !el.hidden && el.textContent === "1 waiting")`, 5*time.Second)
	waitTrue(t, doc, "desktop notification", `window.seenNotifications.length === 1 && window.seenNotifications[0] === "A patient is waiting"`, 5*time.Second)
	axe.Check(t, doc, "dashboard with a patient waiting")
	do(t, doc, "open the call", chromedp.Navigate(callURL), chromedp.WaitVisible(chromedp.CSS("#links-title")))
	waitTrue(t, patient, "waiting room says the clinician has been told", `document.getElementById("lobby-wait").dataset.clinician === "true" && document.getElementById("lobby-text").textContent.includes("has been told")`, 10*time.Second)
	waitTrue(t, patient, "waiting room names the clinician", `document.getElementById("lobby-host").textContent.includes("Dr. Ana Layout")`, 5*time.Second)
	waitTrue(t, patient, "self-view while waiting", `document.getElementById("lobby-self").videoWidth > 0 && document.getElementById("lobby-self").checkVisibility()`, 10*time.Second)
	checkLayout(t, patient, "waiting room", phone)
	axe.Check(t, patient, "waiting room")
	setViewport(t, patient, desktop)
	checkLayout(t, patient, "waiting room", desktop)
	setViewport(t, patient, phone)
	waitTrue(t, doc, "clinician sees the waiting patient has no microphone", `[...document.querySelectorAll("#lobby li.waiting")].some(li => li.textContent.includes("Pat Denied") && li.textContent.includes("no microphone"))`, 15*time.Second)
	waitTrue(t, patient, "waiting room warns of the missing microphone", `document.getElementById("lobby-nomic").checkVisibility()`, 5*time.Second)
	do(t, doc, "deny", chromedp.Click(chromedp.CSS(`#lobby li.waiting button:not(.admit)`)))
	expel("denied", "could not let you in")
	setMediaPermission(t, patient, d, "microphone", browser.PermissionSettingGranted)

	joinAsPatient(t, patient, link, "Pat Example")
	admitted("Pat Example")
	waitTrue(t, doc, "clinician decodes the patient's video", remoteVideoDecoding, 90*time.Second)
	waitTrue(t, patient, "patient decodes the clinician's video", remoteVideoDecoding, 90*time.Second)
	waitTrue(t, patient, "the call names the clinician by display name", `document.querySelector("figure.tile:not(.self) figcaption").textContent.includes("Dr. Ana Layout")`, 5*time.Second)

	for _, size := range [][2]int64{phone, desktop} {
		setViewport(t, patient, size)
		waitTrue(t, patient, "layout settles", `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, 5*time.Second)
		checkLayout(t, patient, "call", size)
		cov, err := chromedp.Run(patient, chromedp.Evaluate[string](videoCoverage))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("call at %dx%d: %s", size[0], size[1], cov)
		if !strings.Contains(cov, `"selfSmaller":true`) {
			t.Errorf("call at %dx%d: self-view not smaller than the remote video: %s", size[0], size[1], cov)
		}
		if size == phone {
			var share float64
			if _, err := fmt.Sscanf(cov, `{"cover":%g`, &share); err != nil || share < 0.6 {
				t.Errorf("remote video covers %s of the phone's viewport, want at least 60%%", cov)
			}
		}
	}
	setViewport(t, patient, phone)
	axe.Check(t, patient, "call (patient)")
	checkLayout(t, doc, "call (clinician)", desktop)
	axe.Check(t, doc, "call (clinician)")

	// The chat opens as a sheet over the video on the phone, with its unread badge.
	do(t, doc, "chat", chromedp.SendKeys(chromedp.CSS("#chat-text"), "How are you feeling?"), chromedp.Click(chromedp.CSS("#chat-form button")))
	waitTrue(t, patient, "unread badge", `!document.getElementById("unread").hidden && document.getElementById("unread").textContent === "1"`, 10*time.Second)
	do(t, patient, "open chat", chromedp.Click(chromedp.CSS("#open-chat")))
	waitTrue(t, patient, "chat sheet shows the message", `document.getElementById("chat-log").checkVisibility() && document.getElementById("chat-log").textContent.includes("feeling") && document.getElementById("unread").hidden`, 5*time.Second)
	checkLayout(t, patient, "chat sheet", phone)
	axe.Check(t, patient, "chat sheet")
	do(t, patient, "close chat", chromedp.Click(chromedp.CSS("#close-sheet")))

	// A clinician who turns the camera off and mutes shows as a name card
	// with both marks, not as a black picture.
	do(t, doc, "camera off and mute", chromedp.Click(chromedp.CSS("#camera")), chromedp.Click(chromedp.CSS("#mute")))
	waitTrue(t, patient, "name card with marks", `(() => {
  const fig = document.querySelector("figure.tile:not(.self)");
  const card = fig.querySelector(".name-card");
  return fig.classList.contains("no-video") && card.checkVisibility() && card.textContent === "DA" &&
    /muted, camera off/.test(fig.querySelector("figcaption").textContent);
})()`, 10*time.Second)
	screenshot(t, patient, "name-card-390x844")

	// The connection bars, with the path and figures behind a tap.
	waitTrue(t, patient, "connection bars", `document.getElementById("quality").dataset.level !== "0" && !/checking/.test(document.getElementById("quality-label").textContent)`, 10*time.Second)
	do(t, patient, "connection details", chromedp.Click(chromedp.CSS("#quality")))
	waitTrue(t, patient, "path shown", `document.getElementById("path").checkVisibility() && /direct (UDP|TCP)|relay (UDP|TCP|TLS)/.test(document.getElementById("path").textContent)`, 5*time.Second)
	checkLayout(t, patient, "connection details", phone)
	do(t, patient, "hide connection details", chromedp.Click(chromedp.CSS("#quality")))

	// The signaling connection drops: a banner while reconnecting, gone
	// once the server has the tab back.
	do(t, patient, "drop the signaling connection", chromedp.Evaluate[chromedp.Void](`window.openConsult.state.ws.close()`))
	waitTrue(t, patient, "reconnecting banner", `document.getElementById("reconnecting").checkVisibility()`, 5*time.Second)
	waitTrue(t, patient, "banner gone after reconnecting", `!document.getElementById("reconnecting").checkVisibility() && !document.getElementById("stage").hidden`, 15*time.Second)

	do(t, doc, "remove", chromedp.Click(chromedp.CSS(`#roster li button`)))
	expel("removed", "removed")

	joinAsPatient(t, patient, link, "Pat Again")
	admitted("Pat Again")
	do(t, doc, "end", chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`), chromedp.Click(chromedp.CSS("#end-form button")))
	expel("ended", "has ended")
	axe.Check(t, patient, "after the end")
}
