// The page's messages and its dates, in the page's language. The server
// embeds the messages of the scripts (the catalog's js.* keys) in the page
// as JSON (<script type="application/json" id="i18n">); a message has named
// placeholders ("Sending {name}…") or plural forms chosen by its "count"
// ({"one": "…", "other": "…"}). Every <time data-format> the server
// renders is shown in the page's language and the reader's time zone, and
// every <data data-format="size"> as a size in that language.

export const lang = document.documentElement.lang || "en";

let messages = {};
try {
  messages = JSON.parse(document.getElementById("i18n")?.textContent || "{}");
} catch {
  // no messages: keys show, which the tests catch
}

const plurals = new Intl.PluralRules(lang);
const placeholder = /\{([a-z][a-z0-9_]*)\}/g;

// text is the message of key in the form params.count calls for.
function text(key, params) {
  const m = messages[key];
  if (m === undefined) return key;
  if (typeof m === "string") return m;
  return m[plurals.select(Number(params.count))] ?? m.other;
}

// t returns the message of key with its placeholders filled from params.
export function t(key, params = {}) {
  return text(key, params).replace(placeholder, (p, name) => (name in params ? String(params[name]) : p));
}

// tNodes is t for a message with elements in it: it returns strings and
// the nodes given in params, in order, to append to an element.
export function tNodes(key, params = {}) {
  const out = [];
  let last = 0;
  const s = text(key, params);
  for (const m of s.matchAll(placeholder)) {
    out.push(s.slice(last, m.index));
    const v = params[m[1]];
    out.push(v === undefined ? m[0] : v instanceof Node ? v : String(v));
    last = m.index + m[0].length;
  }
  out.push(s.slice(last));
  return out.filter((part) => part !== "");
}

// formatNumber writes n with the page language's digits and separators.
export function formatNumber(n, options) {
  return new Intl.NumberFormat(lang, options).format(n);
}

// formatSize writes a file size in kB or MB, as the page's language does.
export function formatSize(bytes) {
  return bytes >= 1 << 20
    ? t("js.size.mb", { size: formatNumber(bytes / (1 << 20), { minimumFractionDigits: 1, maximumFractionDigits: 1 }) })
    : t("js.size.kb", { size: formatNumber(Math.max(1, Math.round(bytes / 1024))) });
}

const timeFormats = {
  time: { hour: "2-digit", minute: "2-digit" },
  date: { dateStyle: "medium" },
  datetime: { dateStyle: "medium", timeStyle: "short" },
  seconds: { dateStyle: "short", timeStyle: "medium" },
};

// formatTime writes a date in the page's language and the reader's time
// zone, in one of the formats the server's <time> elements name.
export function formatTime(date, format = "datetime") {
  return new Intl.DateTimeFormat(lang, timeFormats[format] || timeFormats.datetime).format(date);
}

// localize shows every <time data-format> under root in the reader's
// language and zone (the server writes them in UTC), and every
// <data data-format="size"> as a size in kB or MB.
export function localize(root = document) {
  for (const el of root.querySelectorAll("time[data-format]")) {
    const d = new Date(el.dateTime);
    if (!Number.isNaN(d.getTime())) el.textContent = formatTime(d, el.dataset.format);
  }
  for (const el of root.querySelectorAll('data[data-format="size"]')) {
    const n = Number(el.value);
    if (Number.isFinite(n)) el.textContent = formatSize(n);
  }
}

localize();
