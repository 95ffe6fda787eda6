// The gateway's lookup page, for support staff: one SII in, what the
// gateway verified (or why not) out.
//
// Rules this file keeps:
// * Everything the gateway returns is data, and much of it comes from
//   whoever publishes DNS records (SSIs, rejection reasons, record text):
//   it is rendered with textContent and attributes only, never innerHTML.
// * No inline script or style (the page's policy is `default-src 'self'`):
//   the styles below are a constructed stylesheet (CSSOM), and every
//   element is built here.
// * The API key stays in this tab: in memory and sessionStorage, sent only
//   as `Authorization: Bearer …`, never put into the address.
// * The page tells an observer (a person, a screen reader, a test) where it
//   is: `body[data-state]` is `idle`, `loading` or `done`; the result
//   region is aria-live; `html[data-csp-violations]` counts the policy
//   violations seen.
"use strict";

(function () {
  // --- policy violations (registered first: this script runs in <head>) ---
  let violations = 0;
  document.addEventListener("securitypolicyviolation", function (e) {
    violations += 1;
    document.documentElement.dataset.cspViolations = String(violations);
    document.documentElement.dataset.cspLastViolation = String(e.violatedDirective || "");
  });

  const KEY_STORAGE = "mimi-gateway-api-key";
  const MAX_TEXT = 4096; // a non-JSON error body is shown up to this length

  const STYLE = `
:root { --mimi-styled: 1; color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1b1f24; background: #f6f7f9; line-height: 1.45; }
header, main { max-width: 60rem; margin: 0 auto; padding: 0 1.25rem; }
header { padding-top: 1.25rem; }
h1 { font-size: 1.5rem; margin: 0.5rem 0; }
h2 { font-size: 1.15rem; margin: 0 0 0.75rem; }
h3 { font-size: 1rem; margin: 1.1rem 0 0.4rem; }
.lede { margin: 0 0 1rem; color: #4a5361; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.92em; overflow-wrap: anywhere; }
form { display: grid; grid-template-columns: 2fr 1fr auto; gap: 0.75rem 1rem; align-items: start; background: #fff; padding: 1rem; border: 1px solid #d5d9df; border-radius: 8px; }
.field { display: flex; flex-direction: column; gap: 0.25rem; }
.field small { color: #5b6573; font-size: 0.8rem; }
label { font-weight: 600; }
input { font: inherit; padding: 0.5rem 0.6rem; border: 1px solid #9aa3af; border-radius: 6px; }
input:focus, button:focus { outline: 3px solid #7aa7ff; outline-offset: 1px; }
button { font: inherit; font-weight: 600; padding: 0.55rem 1.2rem; border: 0; border-radius: 6px; background: #1f5fd1; color: #fff; cursor: pointer; margin-top: 1.6rem; }
button[disabled] { background: #7d8899; cursor: progress; }
#result { margin: 1rem 0 2rem; background: #fff; padding: 1rem; border: 1px solid #d5d9df; border-radius: 8px; }
.summary { display: flex; flex-wrap: wrap; gap: 0.5rem 1rem; align-items: center; }
#canonical { font-size: 1.05rem; }
.badge { display: inline-block; padding: 0.15rem 0.6rem; border-radius: 999px; font-weight: 700; font-size: 0.85rem; letter-spacing: 0.02em; border: 1px solid transparent; }
.badge[data-outcome="verified"] { background: #dcf5e3; color: #0f5a2a; border-color: #8fd3a5; }
.badge[data-outcome="not_found"] { background: #eceef1; color: #39424e; border-color: #c2c8d0; }
.badge[data-outcome="rejected"], .badge[data-outcome="internal_error"] { background: #fde2e1; color: #8a1c17; border-color: #f0a29e; }
.badge[data-outcome="dns_error"], .badge[data-outcome="no_buckets"] { background: #fff0d6; color: #7a4a00; border-color: #f2c77a; }
.badge[data-outcome="bad_input"], .badge[data-outcome="http_error"] { background: #fff7c2; color: #665200; border-color: #e8d36a; }
#message { margin: 0.6rem 0 0; }
ul.list { list-style: none; padding: 0; margin: 0; display: grid; gap: 0.5rem; }
ul.list > li { border: 1px solid #e1e4e8; border-radius: 6px; padding: 0.55rem 0.75rem; }
.verified > li { border-left: 4px solid #2f9e55; }
.rejected > li { border-left: 4px solid #d2423b; }
.errors > li { border-left: 4px solid #d89b1c; }
.ssi { font-weight: 600; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 0.75rem; margin: 0.35rem 0 0; font-size: 0.92rem; }
dl.meta dt { color: #5b6573; }
dl.meta dd { margin: 0; }
ul.authorities { display: inline; list-style: none; padding: 0; margin: 0; }
ul.authorities > li { display: inline; }
ul.authorities > li + li::before { content: ", "; }
.record { color: #4a5361; font-size: 0.82rem; }
#http-error { margin: 0.6rem 0 0; font-weight: 600; }
@media (max-width: 44rem) { form { grid-template-columns: 1fr; } button { margin-top: 0; } }
`;

  // What each outcome means, in the words a support agent can pass on.
  const OUTCOMES = {
    verified: ["Verified", "The gateway verified these service-specific identifiers against its trust store."],
    not_found: ["Not found", "No record for this SII was found: it is not published by any zone the gateway consults."],
    rejected: ["Rejected", "Records were found, but none passed verification: nothing can be used. The reasons are below."],
    dns_error: ["DNS error", "The gateway could not reach any DNS source for this SII, so it does not know the answer. Try again later; if it persists, the gateway's DNS configuration or the publisher is at fault."],
    no_buckets: ["No privacy buckets", "The gateway runs in private mode and no zone publishes privacy buckets, so it asked nothing naming this SII."],
    bad_input: ["Not a valid SII", "This is not an SII the gateway can look up (an email address such as alice@example.com, or a telephone number in international form such as +39 06 1234 5678)."],
    internal_error: ["Internal error", "The lookup failed inside the gateway (a bug). Only this lookup is affected; please report it."],
  };

  function applyStyles() {
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    } catch (_) {
      // A browser without constructed stylesheets gets the unstyled page,
      // which works the same.
    }
    // Whether the styles took (a test checks it, under the page's policy).
    const styled = getComputedStyle(document.documentElement).getPropertyValue("--mimi-styled").trim() === "1";
    document.documentElement.dataset.styled = styled ? "yes" : "no";
  }

  // el("li", {class: "x", "data-y": "z"}, child, "text", …): an element
  // whose text children become text nodes (never markup).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function text(v) {
    return typeof v === "string" ? v : v === undefined || v === null ? "" : JSON.stringify(v);
  }

  function list(v) {
    return Array.isArray(v) ? v : [];
  }

  // Seconds since the epoch → "2026-12-15T01:57:53Z", or null.
  function isoUtc(secs) {
    if (typeof secs !== "number" || !Number.isFinite(secs)) return null;
    const d = new Date(secs * 1000);
    return Number.isNaN(d.getTime()) ? null : d.toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  // Seconds from now → "in 13 days", "2 hours ago".
  function relative(deltaSecs) {
    const units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
    const abs = Math.abs(deltaSecs);
    let [unit, size] = units[units.length - 1];
    for (const [u, s] of units) {
      if (abs >= s) { unit = u; size = s; break; }
    }
    const n = Math.round(deltaSecs / size);
    try {
      return new Intl.RelativeTimeFormat("en", { numeric: "auto" }).format(n, unit);
    } catch (_) {
      return (n >= 0 ? "in " : "") + Math.abs(n) + " " + unit + (Math.abs(n) === 1 ? "" : "s") + (n < 0 ? " ago" : "");
    }
  }

  // Retry-After: delay-seconds or an HTTP-date (RFC 9110 §10.2.3) → seconds.
  function retryAfterSeconds(header) {
    if (!header) return null;
    const h = header.trim();
    if (/^\d+$/.test(h)) return Number(h);
    const t = Date.parse(h);
    return Number.isNaN(t) ? null : Math.max(0, Math.ceil((t - Date.now()) / 1000));
  }

  const region = () => document.getElementById("result");

  function setState(state, extra) {
    document.body.dataset.state = state;
    for (const [k, v] of Object.entries(extra || {})) document.body.dataset[k] = String(v);
    region().setAttribute("aria-busy", state === "loading" ? "true" : "false");
  }

  function showInRegion(...nodes) {
    const r = region();
    r.replaceChildren(el("h2", { id: "result-heading" }, "Result"), ...nodes);
  }

  function summary(canonicalText, outcome, label) {
    return el("div", { class: "summary" },
      el("span", { id: "canonical", class: "mono" }, canonicalText),
      el("span", { id: "outcome", class: "badge", "data-outcome": outcome, role: "status" }, label));
  }

  function renderVerified(items, now) {
    const ul = el("ul", { class: "list verified", "aria-label": "Verified service-specific identifiers" });
    for (const v of items) {
      const auths = el("ul", { class: "authorities" });
      for (const a of list(v && v.authorities)) auths.append(el("li", { class: "authority mono" }, text(a)));
      const iso = isoUtc(v && v.expires);
      const expires = iso
        ? el("span", { class: "expires" },
            el("time", { class: "expires-iso mono", datetime: iso }, iso),
            " (", el("span", { class: "expires-relative" }, relative(v.expires - now)), ")")
        : el("span", { class: "expires" }, "unknown");
      ul.append(el("li", { class: "ssi-entry" },
        el("div", { class: "ssi mono" }, text(v && v.ssi)),
        el("dl", { class: "meta" },
          el("dt", {}, "Authorities"), el("dd", {}, auths),
          el("dt", {}, "Expires"), el("dd", {}, expires))));
    }
    return ul;
  }

  function renderRejected(items) {
    const ul = el("ul", { class: "list rejected", "aria-label": "Rejected records" });
    for (const r of items) {
      const meta = el("dl", { class: "meta" }, el("dt", {}, "Reason"), el("dd", { class: "reason" }, text(r && r.reason)));
      if (r && r.authority !== undefined) {
        meta.append(el("dt", {}, "Authority"), el("dd", { class: "authority mono" }, text(r.authority)));
      }
      meta.append(el("dt", {}, "Record"), el("dd", { class: "record mono" }, text(r && r.record)));
      ul.append(el("li", { class: "rejected-entry" }, meta));
    }
    return ul;
  }

  function renderReport(report) {
    const outcome = typeof report.outcome === "string" ? report.outcome : "unknown";
    const [label, message] = OUTCOMES[outcome] || [outcome, "The gateway answered with an outcome this page does not know."];
    const canonical = typeof report.canonical === "string"
      ? report.canonical
      : "input: " + text(report.input);
    const now = Date.now() / 1000;
    const nodes = [summary(canonical, outcome, label), el("p", { id: "message" }, message)];
    const verified = list(report.verified);
    if (verified.length) nodes.push(el("h3", {}, `Verified (${verified.length})`), renderVerified(verified, now));
    const rejected = list(report.rejected);
    if (rejected.length) nodes.push(el("h3", {}, `Rejected records (${rejected.length})`), renderRejected(rejected));
    const zones = list(report.zones);
    if (zones.length) nodes.push(el("h3", {}, "Zones consulted"), el("ul", { class: "list zones" }, ...zones.map((z) => el("li", { class: "zone mono" }, text(z)))));
    const errors = list(report.errors);
    if (errors.length) nodes.push(el("h3", {}, `Errors (${errors.length})`), el("ul", { class: "list errors" }, ...errors.map((e) => el("li", { class: "error" }, text(e)))));
    showInRegion(...nodes);
    setState("done", { outcome, httpStatus: 200 });
  }

  // A request the gateway refused or could not answer: the HTTP status is
  // about the request, not about the SII.
  function renderHttpError(status, what, detail) {
    const nodes = [summary(document.getElementById("sii").value.trim(), "http_error", what),
      el("p", { id: "http-error" }, detail)];
    showInRegion(...nodes);
    setState("done", { outcome: "http_error", httpStatus: status });
  }

  async function errorReason(resp) {
    const body = (await resp.text()).slice(0, MAX_TEXT);
    try {
      const v = JSON.parse(body);
      if (v && typeof v.error === "string") return v.error;
    } catch (_) { /* not JSON: the text itself */ }
    return body.trim() || resp.statusText || "no reason given";
  }

  let current = null; // the AbortController of the lookup in flight

  async function lookup(sii) {
    if (current) current.abort();
    const controller = new AbortController();
    current = controller;
    const button = document.getElementById("lookup");
    button.disabled = true;
    setState("loading", { outcome: "", httpStatus: "" });
    showInRegion(el("p", { id: "placeholder" }, "Looking up…"));
    const headers = { Accept: "application/json" };
    const key = document.getElementById("api-key").value.trim();
    if (key) headers.Authorization = "Bearer " + key;
    try {
      // URLSearchParams, not encodeURIComponent: it never throws (a lone
      // surrogate becomes U+FFFD) and encodes "+" as %2B.
      const resp = await fetch("/v1/lookup?" + new URLSearchParams({ sii }).toString(), {
        headers, signal: controller.signal, cache: "no-store", credentials: "omit",
      });
      if (current !== controller) return;
      if (resp.status === 200) {
        let report;
        try {
          report = await resp.json();
        } catch (_) {
          renderHttpError(200, "Bad answer", "The gateway's answer was not JSON.");
          return;
        }
        if (current !== controller) return;
        if (!report || typeof report !== "object") {
          renderHttpError(200, "Bad answer", "The gateway's answer was not a lookup result.");
        } else {
          renderReport(report);
        }
      } else if (resp.status === 429) {
        const secs = retryAfterSeconds(resp.headers.get("Retry-After"));
        const reason = await errorReason(resp);
        const when = secs === null
          ? "Try again later."
          : `Try again in ${secs} second${secs === 1 ? "" : "s"} (after ${isoUtc(Math.floor(Date.now() / 1000) + secs)}).`;
        renderHttpError(429, "Rate limited", `Too many lookups from this client. ${when} (${reason})`);
        document.body.dataset.retryAfter = secs === null ? "" : String(secs);
      } else if (resp.status === 400) {
        renderHttpError(400, "Bad request", "The gateway refused the request: " + (await errorReason(resp)));
      } else if (resp.status === 401 || resp.status === 403) {
        renderHttpError(resp.status, "Not allowed", "The gateway did not accept the API key (or needs one): " + (await errorReason(resp)));
      } else {
        renderHttpError(resp.status, `HTTP ${resp.status}`, "The gateway could not answer: " + (await errorReason(resp)));
      }
    } catch (e) {
      if (controller.signal.aborted) return;
      renderHttpError(0, "Unreachable", "Cannot reach the gateway: " + text(e && e.message));
    } finally {
      if (current === controller) {
        current = null;
        button.disabled = false;
      }
    }
  }

  function start() {
    applyStyles();
    const form = document.getElementById("lookup-form");
    const siiInput = document.getElementById("sii");
    const keyInput = document.getElementById("api-key");
    try {
      keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
    } catch (_) { /* storage disabled: memory only */ }
    keyInput.addEventListener("change", function () {
      try {
        if (keyInput.value) sessionStorage.setItem(KEY_STORAGE, keyInput.value);
        else sessionStorage.removeItem(KEY_STORAGE);
      } catch (_) { /* memory only */ }
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      const sii = siiInput.value.trim();
      if (!sii) {
        siiInput.focus();
        return;
      }
      // The address names the SII (so a result can be shared), never the key.
      const url = new URL(window.location.href);
      url.search = "?" + new URLSearchParams({ sii }).toString();
      history.replaceState(null, "", url);
      lookup(sii);
    });
    const fromUrl = new URLSearchParams(window.location.search).get("sii");
    if (fromUrl && fromUrl.trim()) {
      siiInput.value = fromUrl.trim();
      lookup(fromUrl.trim());
    } else {
      setState("idle");
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
