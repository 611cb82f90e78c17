/*
 * The assistant's chat widget: one script tag -> a launcher button and a chat panel that answer
 * questions from the organisation's documents, with citations you can open and check.
 *
 *   <script src="https://HOST/widget.js" data-assistant-url="https://HOST" async></script>
 *
 * Attributes of that tag (all optional):
 *   data-assistant-url  the service's URL; without it, the folder the script was loaded from.
 *   data-api-key        sent as "Authorization: Bearer <key>" when ASSISTANT_API_KEYS is set.
 *                       A key written into a public page is public: anyone can read it in the
 *                       page source and call the API with it. Use it to tell deployments apart
 *                       or on an intranet page, never as a secret; on a public site, rely on
 *                       ASSISTANT_CORS_ORIGINS and rate limits at your proxy instead.
 *   data-title          the panel's title (default "Ask the documents").
 *   data-accent         the accent colour, any CSS colour (default #2458d6).
 *   data-suggestions    example questions shown in an empty conversation, separated by "|".
 *
 * The page that embeds the widget must be allowed by the service: add its origin (such as
 * https://intranet.example.org) to ASSISTANT_CORS_ORIGINS.
 *
 * Plain JavaScript, no build step and nothing downloaded at run time. Everything lives in a
 * shadow root, so the page's CSS does not reach the widget and the widget's CSS does not reach
 * the page. Text from the service only ever enters the page as text nodes (textContent), never
 * as HTML.
 */
(() => {
  "use strict";

  const TAG = "assistant-widget";
  if (document.querySelector(TAG) || window.AssistantWidget) return; // loaded twice: keep one

  const script = document.currentScript || findOwnScript();
  const config = readConfig(script);
  if (!config) {
    console.warn("assistant widget: cannot tell the service's URL; set data-assistant-url");
    return;
  }

  const STORE_KEY = `assistant-widget:${config.base}`;
  // An answer has several seconds of silence at most; the service sends a ping every 15 s.
  const IDLE_TIMEOUT_MS = 60000;
  const PASSAGE_CONTEXT_MARK = "\u2026";

  /* -- configuration ------------------------------------------------------------------ */

  function findOwnScript() {
    // document.currentScript is null only in old browsers or when run from a module.
    const scripts = [...document.querySelectorAll("script[src]")];
    return (
      scripts.find((tag) => tag.hasAttribute("data-assistant-url")) ||
      scripts.find((tag) => /\/widget\.js([?#]|$)/.test(tag.src)) ||
      null
    );
  }

  function readConfig(tag) {
    if (!tag) return null;
    const attr = tag.getAttribute("data-assistant-url");
    let base;
    try {
      // Without data-assistant-url: the folder widget.js came from (https://HOST/ for /widget.js).
      base = attr ? new URL(attr, document.baseURI) : new URL(".", tag.src);
    } catch {
      return null;
    }
    const accent = tag.getAttribute("data-accent");
    const suggestions = (tag.getAttribute("data-suggestions") || "")
      .split("|")
      .map((s) => s.trim())
      .filter(Boolean)
      .slice(0, 4);
    return {
      base: base.href.replace(/[?#].*$/, "").replace(/\/+$/, ""),
      apiKey: tag.getAttribute("data-api-key") || "",
      title: tag.getAttribute("data-title") || "Ask the documents",
      accent: accent && window.CSS && CSS.supports("color", accent) ? accent : "",
      suggestions,
    };
  }

  /* -- storage (may be unavailable: private modes, blocked cookies) ---------------------- */

  function storageGet(storage, key) {
    try {
      return window[storage].getItem(`${STORE_KEY}:${key}`);
    } catch {
      return null;
    }
  }

  function storageSet(storage, key, value) {
    try {
      if (value === null) window[storage].removeItem(`${STORE_KEY}:${key}`);
      else window[storage].setItem(`${STORE_KEY}:${key}`, value);
    } catch {
      /* the conversation then lasts as long as the page */
    }
  }

  function ratingsGiven() {
    try {
      return JSON.parse(storageGet("localStorage", "feedback") || "{}") || {};
    } catch {
      return {};
    }
  }

  function rememberRating(answerId, rating) {
    const given = ratingsGiven();
    given[answerId] = rating;
    const ids = Object.keys(given);
    // Keep the memory small: the latest 200 ratings are enough to show what was rated.
    for (const id of ids.slice(0, Math.max(0, ids.length - 200))) delete given[id];
    storageSet("localStorage", "feedback", JSON.stringify(given));
  }

  /* -- talking to the service ---------------------------------------------------------- */

  class ServiceError extends Error {
    constructor(kind, status = 0, message = "") {
      super(message);
      this.kind = kind; // "network" | "http" | "stream" | "timeout" | "aborted" | "browser"
      this.status = status;
    }

    /* Only a failed or dropped connection may go better the next time. An HTTP error or the
       stream's `error` event is the service's answer: sending the same again gets the same. */
    get retryable() {
      return this.kind === "network" || this.kind === "stream" || this.kind === "timeout";
    }
  }

  function requestHeaders(extra) {
    const headers = { ...extra };
    if (config.apiKey) headers.Authorization = `Bearer ${config.apiKey}`;
    return headers;
  }

  function networkError(signal) {
    if (signal?.aborted) {
      return new ServiceError(signal.reason === "timeout" ? "timeout" : "aborted");
    }
    if (location.origin !== new URL(config.base).origin) {
      console.warn(
        `assistant widget: no response from ${config.base}. If the service is running, ` +
          `add this page's origin (${location.origin}) to ASSISTANT_CORS_ORIGINS.`,
      );
    }
    return new ServiceError("network");
  }

  async function httpError(response) {
    let detail = "";
    try {
      const body = await response.json();
      if (typeof body?.detail === "string") detail = body.detail;
    } catch {
      /* not JSON: a proxy's error page */
    }
    return new ServiceError("http", response.status, detail || response.statusText);
  }

  /* fetch() that turns every failure into a ServiceError. */
  async function request(path, init) {
    let response;
    try {
      response = await fetch(config.base + path, {
        credentials: "omit", // keys travel in the Authorization header, never in cookies
        cache: "no-store",
        ...init,
      });
    } catch {
      throw networkError(init.signal);
    }
    if (!response.ok) throw await httpError(response);
    return response;
  }

  async function call(method, path, body) {
    const init = { method, headers: requestHeaders({ Accept: "application/json" }) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await request(path, init);
    try {
      return await response.json();
    } catch {
      throw new ServiceError("http", response.status, "The service sent an unreadable reply.");
    }
  }

  function documentPath(docId) {
    // Ids are paths (reports/2024/q1.txt): encode each segment, keep the slashes.
    return `/api/documents/${docId.split("/").map(encodeURIComponent).join("/")}`;
  }

  /* Server-Sent Events, parsed by hand: EventSource cannot POST. */
  function sseParser(onEvent) {
    let buffer = "";
    let name = "";
    let data = [];

    function line(text) {
      if (text === "") {
        if (data.length) onEvent(name || "message", data.join("\n"));
        name = "";
        data = [];
        return;
      }
      if (text.charAt(0) === ":") return; // a comment: the service's keep-alive ping
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.charAt(0) === " ") value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }

    return {
      push(chunk) {
        buffer += chunk;
        // A trailing \r may be the first half of \r\n: keep it until the next chunk.
        const end = buffer.charAt(buffer.length - 1) === "\r" ? buffer.length - 1 : buffer.length;
        const lines = buffer.slice(0, end).split(/\r\n|\r|\n/);
        buffer = lines.pop() + buffer.slice(end);
        lines.forEach(line);
      },
      end() {
        if (buffer) line(buffer.replace(/\r$/, ""));
        buffer = "";
        line("");
      },
    };
  }

  async function streamChat(message, conversationId, onEvent, controller) {
    const { signal } = controller;
    let timer = 0;
    const touch = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort("timeout"), IDLE_TIMEOUT_MS);
    };
    touch();
    try {
      const response = await request("/api/chat/stream", {
        method: "POST",
        headers: requestHeaders({
          "Content-Type": "application/json",
          Accept: "text/event-stream",
        }),
        body: JSON.stringify({ message, conversation_id: conversationId }),
        signal,
      });
      if (!response.body) {
        throw new ServiceError("browser", 0, "This browser cannot read streamed answers.");
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = sseParser(onEvent);
      for (;;) {
        let step;
        try {
          step = await reader.read();
        } catch {
          throw signal.aborted
            ? networkError(signal)
            : new ServiceError(
                "stream",
                0,
                "The connection was lost while the answer was arriving.",
              );
        }
        touch();
        if (step.done) break;
        parser.push(decoder.decode(step.value, { stream: true }));
      }
      parser.push(decoder.decode());
      parser.end();
    } finally {
      clearTimeout(timer);
    }
  }

  /* -- DOM helpers (no innerHTML anywhere: server text becomes text nodes) ----------------- */

  function h(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text")
        node.textContent = value; // text, never markup
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children || []) {
      // Strings become text nodes: append() never parses them as HTML.
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  const ICONS = {
    chat: [
      "M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6A.5.5 0 0 1 5 19.2V16h0A1.5 1.5 0 0 1 4 14.5Z",
      "M8 8.5h8M8 11.5h5",
    ],
    close: ["M6 6l12 12M18 6 6 18"],
    chevron: ["M6 9l6 6 6-6"],
    plus: ["M12 5v14M5 12h14"],
    send: ["M5 12h13M13 6l6 6-6 6"],
    up: [
      "M7 11v9H4.5A1.5 1.5 0 0 1 3 18.5v-6A1.5 1.5 0 0 1 4.5 11Z",
      "M7 11l4-7.5c1.4 0 2.5 1.1 2.5 2.5v3h5.2a2 2 0 0 1 2 2.3l-1.1 7A2 2 0 0 1 17.6 20H7",
    ],
    down: [
      "M17 13V4h2.5A1.5 1.5 0 0 1 21 5.5v6a1.5 1.5 0 0 1-1.5 1.5Z",
      "M17 13l-4 7.5c-1.4 0-2.5-1.1-2.5-2.5v-3H5.3a2 2 0 0 1-2-2.3l1.1-7A2 2 0 0 1 6.4 4H17",
    ],
    check: ["M5 12.5l4.5 4.5L19 7.5"],
    alert: ["M12 4 2.8 19.5h18.4Z", "M12 10v4.5M12 17.2v.1"],
    notfound: [
      "M10.5 4a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13Z",
      "M15.5 15.5 20 20",
      "M8 8.5l5 5M13 8.5l-5 5",
    ],
    doc: ["M7 3h7l4 4v14H7Z", "M14 3v4h4", "M9.5 12h6M9.5 15.5h6"],
    retry: ["M20 12a8 8 0 1 1-2.3-5.6", "M20 4v4.5h-4.5"],
  };

  function icon(name, cls) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", `icon${cls ? ` ${cls}` : ""}`);
    for (const d of ICONS[name]) {
      const path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  function srOnly(text) {
    return h("span", { class: "sr-only", text });
  }

  /* "A.3.3.1.1. Plastipolis" -> "Plastipolis": outline numbers say little in a chip. */
  function shortSection(section) {
    return section.replace(/^(?:[A-Z]\.|\d+\.)(?:\d+\.?)*\s+(?=\S)/, "");
  }

  function sourceLabel(c) {
    const parts = [c.title];
    if (c.section && c.section !== c.title) parts.push(c.section);
    if (c.page) parts.push(`page ${c.page}`);
    return parts.join(" \u2014 ");
  }

  /* -- styles ------------------------------------------------------------------------- */

  const CSS_TEXT = [
    /* The page's rules reach the host element only; !important inside the shadow tree wins. */
    ":host { all: initial !important; }",
    ".aw, .aw * { box-sizing: border-box; }",
    ".aw { --accent: #2458d6; --accent-strong: #1b45ad; --accent-soft: #eaf0fd; --ink: #1c2430;",
    "  --muted: #5f6b7a; --line: #e3e7ee; --bg: #ffffff; --canvas: #f6f7f9; --focus: #2458d6;",
    "  --warn-bg: #fff8eb; --warn-line: #f0c987; --warn-ink: #8a4b00; --err-bg: #fff1f1;",
    "  --err-line: #f3b4b4; --err-ink: #a11d1d; --ok-ink: #146c43;",
    "  font-family: -apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, 'Helvetica Neue', Arial,",
    "    'Noto Sans', 'Liberation Sans', sans-serif;",
    "  font-size: 14.5px; line-height: 1.5; color: var(--ink); font-weight: 400; font-style: normal;",
    "  letter-spacing: normal; word-spacing: normal; text-align: left; text-transform: none;",
    "  text-indent: 0; text-shadow: none; visibility: visible; cursor: auto; direction: ltr;",
    "  -webkit-font-smoothing: antialiased; }",
    ".aw button, .aw textarea { font: inherit; color: inherit; letter-spacing: inherit; margin: 0; }",
    ".aw button { cursor: pointer; background: none; border: 0; padding: 0; display: inline-flex;",
    "  align-items: center; justify-content: center; gap: 6px; text-decoration: none; }",
    ".aw button:disabled { cursor: default; }",
    ".aw :focus { outline: none; }",
    ".aw :focus-visible { outline: 2px solid var(--focus); outline-offset: 2px; }",
    ".aw [hidden] { display: none !important; }",
    /* :where() keeps these resets at zero specificity, below every class rule. */
    ":where(.aw) :where(p, h2, h3, ul, blockquote, form) { margin: 0; padding: 0; }",
    ".icon { width: 20px; height: 20px; fill: none; stroke: currentColor; stroke-width: 1.8;",
    "  stroke-linecap: round; stroke-linejoin: round; flex: none; }",
    ".sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; overflow: hidden;",
    "  clip: rect(0 0 0 0); white-space: nowrap; border: 0; padding: 0; }",

    /* launcher */
    ".launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; width: 56px;",
    "  height: 56px; border-radius: 50%; background: var(--accent) !important; color: #fff !important;",
    "  box-shadow: 0 6px 20px rgba(20, 40, 90, .28), 0 2px 4px rgba(20, 40, 90, .18);",
    "  transition: transform .15s ease, background-color .15s ease; }",
    ".launcher:hover { background: var(--accent-strong) !important; transform: translateY(-1px); }",
    ".launcher .icon { width: 26px; height: 26px; }",
    ".launcher:focus-visible { outline-offset: 3px; }",

    /* panel */
    ".panel { position: fixed; right: 20px; bottom: 88px; z-index: 2147483001; width: 400px;",
    "  height: min(700px, calc(100vh - 112px)); max-height: calc(100vh - 40px); display: flex;",
    "  flex-direction: column; background: var(--bg); border: 1px solid var(--line);",
    "  border-radius: 16px; overflow: hidden;",
    "  box-shadow: 0 24px 60px rgba(16, 24, 40, .22), 0 4px 12px rgba(16, 24, 40, .08);",
    "  animation: aw-in .18s ease-out; }",
    "@keyframes aw-in { from { opacity: 0; transform: translateY(10px) scale(.985); } }",
    "@media (prefers-reduced-motion: reduce) { .panel, .launcher, .typing i, .caret { animation: none !important; transition: none !important; } }",

    ".head { display: flex; align-items: center; gap: 12px; padding: 14px 12px 14px 18px;",
    "  background: var(--accent); color: #fff; flex: none; }",
    ".head-badge { width: 36px; height: 36px; border-radius: 10px; background: rgba(255,255,255,.18);",
    "  display: flex; align-items: center; justify-content: center; flex: none; }",
    ".head-titles { flex: 1; min-width: 0; }",
    ".head h2 { font-size: 16px; font-weight: 650; line-height: 1.3; letter-spacing: -.005em; }",
    ".head p { font-size: 12.5px; opacity: .85; line-height: 1.35; }",
    ".head .icon-btn { color: #fff; }",
    ".head .icon-btn:hover { background: rgba(255,255,255,.16); }",
    ".head .icon-btn:focus-visible { outline-color: #fff; }",
    ".icon-btn { width: 36px; height: 36px; border-radius: 9px; color: var(--muted);",
    "  transition: background-color .12s ease, color .12s ease; }",
    ".icon-btn:hover { background: #eef1f5; color: var(--ink); }",

    /* messages */
    ".log { flex: 1; overflow-y: auto; padding: 18px 16px 8px; background: var(--canvas);",
    "  display: flex; flex-direction: column; gap: 14px; overscroll-behavior: contain; }",
    ".welcome { margin: auto 4px; padding: 8px 6px 16px; text-align: center; color: var(--muted); }",
    ".welcome-badge { width: 48px; height: 48px; border-radius: 14px; margin: 0 auto 12px;",
    "  background: var(--accent-soft); color: var(--accent); display: flex; align-items: center;",
    "  justify-content: center; }",
    ".welcome-badge .icon { width: 26px; height: 26px; }",
    ".welcome h3 { font-size: 16px; font-weight: 650; color: var(--ink); margin-bottom: 6px; }",
    ".welcome p { font-size: 14px; max-width: 300px; margin: 0 auto; }",
    ".suggestions { display: flex; flex-direction: column; gap: 8px; margin-top: 18px; }",
    ".suggestion { justify-content: flex-start !important; text-align: left; width: 100%;",
    "  padding: 10px 14px !important; border-radius: 10px; background: var(--bg) !important;",
    "  border: 1px solid var(--line) !important; color: var(--ink); font-size: 14px; }",
    ".suggestion:hover { border-color: var(--accent) !important; color: var(--accent); }",

    ".msg { max-width: 100%; }",
    ".msg-user { align-self: flex-end; max-width: 85%; background: var(--accent); color: #fff;",
    "  padding: 9px 14px; border-radius: 16px 16px 4px 16px; white-space: pre-wrap;",
    "  overflow-wrap: anywhere; box-shadow: 0 1px 2px rgba(16,24,40,.08); }",
    ".msg-bot { align-self: stretch; background: var(--bg); border: 1px solid var(--line);",
    "  border-radius: 4px 16px 16px 16px; padding: 12px 14px;",
    "  box-shadow: 0 1px 2px rgba(16,24,40,.05); overflow-wrap: anywhere; }",
    ".answer p + p, .answer p + ul, .answer ul + p { margin-top: 8px; }",
    ".answer ul { margin-top: 8px; padding-left: 2px; list-style: none; display: flex;",
    "  flex-direction: column; gap: 6px; }",
    ".answer li { position: relative; padding-left: 16px; }",
    ".answer li::before { content: ''; position: absolute; left: 3px; top: .62em; width: 5px;",
    "  height: 5px; border-radius: 50%; background: #9aa6b6; }",
    ".ref { display: inline-flex !important; vertical-align: 1px; min-width: 18px; height: 18px;",
    "  padding: 0 5px !important; margin: 0 1px; border-radius: 9px; background: var(--accent-soft) !important;",
    "  color: var(--accent) !important; font-size: 11.5px !important; font-weight: 650; line-height: 1; }",
    ".ref:hover, .ref[aria-expanded='true'] { background: var(--accent) !important; color: #fff !important; }",
    ".ref.pending { opacity: .6; }",
    ".caret { display: inline-block; width: 7px; height: 15px; margin-left: 2px; vertical-align: -2px;",
    "  background: var(--accent); border-radius: 1px; animation: aw-blink 1s steps(2) infinite; }",
    "@keyframes aw-blink { 50% { opacity: 0; } }",
    ".typing { display: flex; align-items: center; gap: 10px; color: var(--muted); font-size: 14px; }",
    ".typing span { display: inline-flex; gap: 4px; }",
    ".typing i { width: 6px; height: 6px; border-radius: 50%; background: var(--accent);",
    "  opacity: .35; animation: aw-dot 1.2s infinite ease-in-out; }",
    ".typing i:nth-child(2) { animation-delay: .15s; } .typing i:nth-child(3) { animation-delay: .3s; }",
    "@keyframes aw-dot { 40% { opacity: 1; transform: translateY(-2px); } }",

    /* abstention: clearly not an answer */
    ".msg-bot.abstained { background: var(--warn-bg); border: 1px dashed var(--warn-line); }",
    ".abstain-label { display: flex; align-items: center; gap: 6px; font-size: 12px;",
    "  font-weight: 700; letter-spacing: .04em; text-transform: uppercase; color: var(--warn-ink);",
    "  margin-bottom: 4px; }",
    ".abstain-label .icon { width: 16px; height: 16px; }",
    ".abstain-hint { margin-top: 6px; font-size: 13px; color: var(--muted); }",

    /* sources */
    ".sources { margin-top: 12px; padding-top: 10px; border-top: 1px solid var(--line); }",
    ".sources-label { display: block; font-size: 11.5px; font-weight: 700; letter-spacing: .05em;",
    "  text-transform: uppercase; color: var(--muted); margin-bottom: 6px; }",
    ".chips { display: flex; flex-wrap: wrap; gap: 6px; list-style: none; }",
    ".chip { max-width: 100%; height: 30px; padding: 0 10px 0 4px !important; border-radius: 15px;",
    "  border: 1px solid var(--line) !important; background: #f8f9fb !important; font-size: 13px;",
    "  color: var(--ink); transition: border-color .12s ease, background-color .12s ease; }",
    ".chip:hover { border-color: var(--accent) !important; background: var(--accent-soft) !important; }",
    ".chip[aria-expanded='true'] { border-color: var(--accent) !important; background: var(--accent-soft) !important; }",
    ".chip-n { display: inline-flex; align-items: center; justify-content: center; min-width: 22px;",
    "  height: 22px; padding: 0 6px; border-radius: 11px; background: var(--accent); color: #fff;",
    "  font-size: 12px; font-weight: 700; flex: none; }",
    ".chip-text { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 210px; }",

    ".passage { margin-top: 10px; border: 1px solid var(--line); border-radius: 12px;",
    "  background: #fbfcfd; overflow: hidden; }",
    ".passage-head { display: flex; align-items: flex-start; gap: 10px; padding: 10px 6px 8px 12px;",
    "  border-bottom: 1px solid var(--line); background: var(--bg); }",
    ".passage-head .chip-n { margin-top: 1px; }",
    ".passage-meta { flex: 1; min-width: 0; }",
    ".passage-title { font-weight: 650; font-size: 14px; line-height: 1.35; }",
    ".passage-section { font-size: 13px; color: var(--muted); line-height: 1.35; margin-top: 1px; }",
    ".passage-doc { font-size: 12px; color: #8893a2; margin-top: 2px; display: flex; gap: 4px;",
    "  align-items: center; }",
    ".passage-doc .icon { width: 13px; height: 13px; }",
    ".passage-head .icon-btn { width: 30px; height: 30px; }",
    ".passage-head .icon-btn .icon { width: 17px; height: 17px; }",
    ".passage-text { padding: 10px 14px 12px; font-size: 13px; line-height: 1.6; color: #4a5563;",
    "  white-space: pre-wrap; max-height: 190px; overflow-y: auto; }",
    ".passage-text mark { background: #ffe9a8; color: var(--ink); padding: 1px 2px;",
    "  border-radius: 3px; box-shadow: 0 0 0 1px #f3d27a; }",
    ".passage-note { padding: 0 14px 10px; font-size: 12.5px; color: var(--muted); }",

    /* feedback */
    ".feedback { display: flex; align-items: center; gap: 2px; margin-top: 10px; min-height: 30px; }",
    ".feedback-q { font-size: 12.5px; color: var(--muted); margin-right: 4px; }",
    ".thumb { width: 30px; height: 30px; border-radius: 8px; }",
    ".thumb .icon { width: 17px; height: 17px; }",
    ".thumb[aria-pressed='true'] { color: var(--accent); background: var(--accent-soft); }",
    ".thumb:disabled:not([aria-pressed='true']) { opacity: .4; }",
    ".thumb:disabled:hover { background: transparent; }",
    ".thumb[aria-pressed='true']:disabled:hover { background: var(--accent-soft); }",
    ".feedback-status { font-size: 12.5px; margin-left: 6px; display: inline-flex; align-items: center; gap: 4px; }",
    ".feedback-status.ok { color: var(--ok-ink); }",
    ".feedback-status.failed { color: var(--err-ink); }",
    ".feedback-status .icon { width: 15px; height: 15px; }",
    ".feedback-form { margin-top: 8px; display: flex; flex-direction: column; gap: 8px; }",
    ".feedback-form label { font-size: 13px; color: var(--muted); }",
    ".feedback-form textarea { width: 100%; min-height: 64px; resize: vertical; padding: 8px 10px;",
    "  border: 1px solid var(--line); border-radius: 10px; background: var(--bg); font-size: 14px; }",
    ".feedback-form textarea:focus-visible { outline: 2px solid var(--focus); outline-offset: 0; border-color: transparent; }",
    ".row { display: flex; gap: 8px; justify-content: flex-end; }",
    ".btn { height: 32px; padding: 0 14px !important; border-radius: 9px; font-size: 13.5px; font-weight: 600; }",
    ".btn-primary { background: var(--accent) !important; color: #fff !important; }",
    ".btn-primary:hover { background: var(--accent-strong) !important; }",
    ".btn-quiet { color: var(--muted); }",
    ".btn-quiet:hover { background: #eef1f5 !important; color: var(--ink); }",

    /* errors and notes */
    ".msg-error { display: flex; gap: 10px; align-items: flex-start; background: var(--err-bg);",
    "  border: 1px solid var(--err-line); border-radius: 12px; padding: 12px 14px; color: var(--err-ink); }",
    ".msg-error .icon { margin-top: 1px; }",
    ".msg-error-body { flex: 1; min-width: 0; }",
    ".msg-error strong { display: block; font-weight: 650; font-size: 14.5px; }",
    ".msg-error p { font-size: 13.5px; color: #5b2b2b; margin-top: 2px; }",
    ".msg-error .detail { font-size: 12.5px; color: #7a4a4a; margin-top: 4px; }",
    ".msg-error .restored { font-size: 12.5px; margin-top: 4px; }",
    ".msg-error .btn { margin-top: 10px; background: var(--bg) !important; border: 1px solid var(--err-line) !important;",
    "  color: var(--err-ink); }",
    ".msg-error .btn:hover { background: #fff !important; border-color: var(--err-ink) !important; }",
    ".msg-error .btn .icon { width: 16px; height: 16px; margin: 0; }",
    ".note { align-self: center; font-size: 12.5px; color: var(--muted); text-align: center; padding: 0 12px; }",

    /* composer */
    ".composer { flex: none; border-top: 1px solid var(--line); background: var(--bg); padding: 12px 12px 10px; }",
    ".composer-box { display: flex; align-items: flex-end; gap: 8px; border: 1px solid #cfd6e0;",
    "  border-radius: 14px; padding: 6px 6px 6px 14px; background: var(--bg);",
    "  transition: border-color .12s ease, box-shadow .12s ease; }",
    ".composer-box:focus-within { border-color: var(--accent); box-shadow: 0 0 0 3px var(--accent-soft); }",
    ".composer textarea { flex: 1; border: 0; background: transparent; resize: none; padding: 6px 0;",
    "  min-height: 34px; max-height: 132px; font-size: 15px; line-height: 1.45; overflow-y: auto; }",
    ".composer textarea::placeholder { color: #8a94a3; }",
    ".composer textarea:focus-visible { outline: none; }",
    ".send { width: 36px; height: 36px; border-radius: 10px; background: var(--accent) !important;",
    "  color: #fff !important; flex: none; transition: background-color .12s ease, opacity .12s ease; }",
    ".send:hover:not(:disabled) { background: var(--accent-strong) !important; }",
    ".send:disabled { opacity: .45; }",
    ".send .spinner { width: 16px; height: 16px; border-radius: 50%; border: 2px solid rgba(255,255,255,.45);",
    "  border-top-color: #fff; animation: aw-spin .8s linear infinite; }",
    "@keyframes aw-spin { to { transform: rotate(360deg); } }",
    ".hint { margin-top: 7px; font-size: 11.5px; color: #8a94a3; text-align: center; }",
    ".hint kbd { font: inherit; font-weight: 600; color: var(--muted); }",
    "@media (hover: none) and (pointer: coarse) { .hint { display: none; } }", // no keyboard hints on touch screens

    /* phones: the panel takes the whole screen. On a phone, a host page wider than the screen
       widens the layout viewport that right/bottom/100% refer to, which would push the launcher
       and the panel's close and send buttons off the screen; 100vw and 100dvh stay the screen's
       size (the initial containing block), so both are placed with those. The repeated
       declarations are fallbacks for browsers without min() or dvh. */
    "@media (max-width: 480px) {",
    "  .launcher { right: auto; bottom: auto; left: calc(100% - 76px); top: calc(100% - 76px);",
    "    left: calc(min(100vw, 100%) - 76px); top: calc(min(100vh, 100%) - 76px);",
    "    top: calc(min(100dvh, 100%) - 76px); }",
    "  .panel { inset: 0 auto auto 0; width: 100%; height: 100%; width: min(100vw, 100%);",
    "    height: min(100vh, 100%); height: min(100dvh, 100%); max-height: none; border-radius: 0; border: 0; }",
    "  .panel:not([hidden]) ~ .launcher { display: none; }",
    "  .log { padding: 14px 12px 6px; }",
    "  .chip-text { max-width: 170px; }",
    "  .composer textarea { font-size: 16px; }", // 16 px keeps iOS from zooming into the field
    "}",
  ].join("\n");

  /* -- the widget --------------------------------------------------------------------- */

  const ui = {};
  const state = {
    conversationId: storageGet("localStorage", "conversation"),
    restored: false,
    busy: false,
    controller: null,
    restoring: null, // the restore under way, if any
    passages: new Map(), // "doc|start|end" -> passage JSON
  };

  function build() {
    const host = document.createElement(TAG);
    const root = host.attachShadow({ mode: "open" });
    if (
      root.adoptedStyleSheets !== undefined &&
      window.CSSStyleSheet &&
      CSSStyleSheet.prototype.replaceSync
    ) {
      // A constructed sheet also works under a Content-Security-Policy without 'unsafe-inline'.
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS_TEXT);
      root.adoptedStyleSheets = [sheet];
    } else {
      root.append(h("style", { text: CSS_TEXT }));
    }

    ui.input = h("textarea", {
      id: "aw-input",
      rows: "1",
      placeholder: "Ask a question about the documents\u2026",
      autocomplete: "off",
      enterkeyhint: "send",
      onkeydown: onInputKey,
      oninput: autoGrow,
    });
    ui.send = h("button", { type: "submit", class: "send", "aria-label": "Send" }, [icon("send")]);
    ui.log = h("div", {
      class: "log",
      role: "log",
      "aria-live": "polite",
      "aria-relevant": "additions",
      "aria-label": "Conversation",
      tabindex: "-1",
    });
    ui.newButton = h(
      "button",
      {
        type: "button",
        class: "icon-btn",
        "aria-label": "New conversation",
        title: "New conversation",
        onclick: newConversation,
      },
      [icon("plus")],
    );
    ui.panel = h(
      "section",
      {
        class: "panel",
        id: "aw-panel",
        role: "dialog",
        "aria-modal": "false",
        "aria-labelledby": "aw-title",
        "aria-describedby": "aw-subtitle",
        hidden: true,
        onkeydown: onPanelKey,
      },
      [
        h("header", { class: "head" }, [
          h("div", { class: "head-badge" }, [icon("chat")]),
          h("div", { class: "head-titles" }, [
            h("h2", { id: "aw-title", text: config.title }),
            h("p", { id: "aw-subtitle", text: "Answers cite their sources" }),
          ]),
          ui.newButton,
          h(
            "button",
            {
              type: "button",
              class: "icon-btn",
              "aria-label": "Close",
              title: "Close (Esc)",
              onclick: () => close(),
            },
            [icon("close")],
          ),
        ]),
        ui.log,
        h("form", { class: "composer", onsubmit: onSubmit }, [
          h("label", { class: "sr-only", for: "aw-input", text: "Your question" }),
          h("div", { class: "composer-box" }, [ui.input, ui.send]),
          h("p", { class: "hint", "aria-hidden": "true" }, [
            h("kbd", { text: "Enter" }),
            " to send \u00b7 ",
            h("kbd", { text: "Shift+Enter" }),
            " for a new line",
          ]),
        ]),
      ],
    );
    ui.launcher = h(
      "button",
      {
        type: "button",
        class: "launcher",
        "aria-label": "Open the document assistant",
        "aria-expanded": "false",
        "aria-controls": "aw-panel",
        "aria-haspopup": "dialog",
        title: config.title,
        onclick: () => (ui.panel.hidden ? open() : close()),
        onkeydown: (event) => event.key === "Escape" && close(),
      },
      [icon("chat", "when-closed"), icon("chevron", "when-open")],
    );
    ui.launcher.querySelector(".when-open").style.display = "none";

    ui.root = h("div", { class: "aw" }, [ui.panel, ui.launcher]);
    if (config.accent) {
      ui.root.style.setProperty("--accent", config.accent);
      ui.root.style.setProperty("--accent-strong", config.accent);
      ui.root.style.setProperty("--focus", config.accent);
    }
    root.append(ui.root);
    document.body.appendChild(host);
    showWelcome();
    if (storageGet("sessionStorage", "open") === "1") open({ focus: false }); // open before a reload
  }

  /* -- opening and closing ------------------------------------------------------------- */

  function open(options) {
    const focus = !options || options.focus !== false;
    ui.panel.hidden = false;
    ui.launcher.setAttribute("aria-expanded", "true");
    ui.launcher.setAttribute("aria-label", "Close the document assistant");
    ui.launcher.querySelector(".when-closed").style.display = "none";
    ui.launcher.querySelector(".when-open").style.display = "";
    storageSet("sessionStorage", "open", "1");
    if (focus) ui.input.focus();
    if (!state.restored) restore();
    scrollToEnd(true);
  }

  function close() {
    if (ui.panel.hidden) return;
    ui.panel.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "false");
    ui.launcher.setAttribute("aria-label", "Open the document assistant");
    ui.launcher.querySelector(".when-closed").style.display = "";
    ui.launcher.querySelector(".when-open").style.display = "none";
    storageSet("sessionStorage", "open", null);
    ui.launcher.focus();
  }

  function onPanelKey(event) {
    if (event.key === "Escape" && !event.isComposing) {
      event.preventDefault();
      event.stopPropagation();
      close();
    }
  }

  /* -- the composer ------------------------------------------------------------------- */

  function onInputKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submit();
    }
  }

  function onSubmit(event) {
    event.preventDefault();
    submit();
  }

  function submit() {
    const question = ui.input.value.trim();
    // While an answer streams, the send waits: the question stays in the field, ready.
    if (!question || state.busy) return;
    ui.input.value = "";
    autoGrow();
    ask(question);
  }

  function autoGrow() {
    ui.input.style.height = "auto";
    ui.input.style.height = `${Math.min(ui.input.scrollHeight, 132)}px`;
  }

  function setBusy(busy) {
    state.busy = busy;
    ui.send.disabled = busy;
    ui.send.setAttribute("aria-label", busy ? "Answering\u2026" : "Send");
    ui.send.replaceChildren(
      busy ? h("span", { class: "spinner", "aria-hidden": "true" }) : icon("send"),
    );
    ui.log.setAttribute("aria-busy", busy ? "true" : "false");
  }

  /* -- the message list --------------------------------------------------------------- */

  function isNearEnd() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
  }

  function scrollToEnd(force) {
    if (force || isNearEnd()) ui.log.scrollTop = ui.log.scrollHeight;
  }

  function append(node) {
    const stick = isNearEnd();
    if (ui.welcome) {
      ui.welcome.remove();
      ui.welcome = null;
    }
    ui.log.append(node);
    scrollToEnd(stick);
    return node;
  }

  function showWelcome() {
    ui.log.replaceChildren();
    ui.welcome = h("div", { class: "welcome" }, [
      h("div", { class: "welcome-badge" }, [icon("doc")]),
      h("h3", { text: "Ask anything about the documents" }),
      h("p", {
        text: "Each answer cites the passages it comes from: click a number to read the source.",
      }),
      config.suggestions.length
        ? h(
            "div",
            { class: "suggestions" },
            config.suggestions.map((q) =>
              h("button", {
                type: "button",
                class: "suggestion",
                text: q,
                onclick: () => state.busy || ask(q),
              }),
            ),
          )
        : null,
    ]);
    ui.log.append(ui.welcome);
  }

  function addNote(text) {
    return append(h("p", { class: "note", text }));
  }

  function addUserMessage(text) {
    return append(h("div", { class: "msg msg-user" }, [srOnly("You: "), text]));
  }

  /* An answer: its text with [n] chips, its sources, the passage viewer and the feedback row. */
  class AnswerView {
    constructor() {
      this.text = "";
      this.citations = null; // null while streaming: markers are not clickable yet
      this.abstained = false;
      this.answerId = null;
      this.openN = null;
      this.body = h("div", { class: "answer" });
      this.el = h("article", { class: "msg msg-bot", "aria-label": "Answer" }, [
        srOnly("Assistant: "),
        this.body,
      ]);
    }

    showTyping() {
      this.body.replaceChildren(
        h("div", { class: "typing" }, [
          h("span", { "aria-hidden": "true" }, [h("i"), h("i"), h("i")]),
          "Searching the documents\u2026",
        ]),
      );
    }

    render(streaming) {
      const container = this.body;
      container.replaceChildren();
      let list = null;
      let para = null;
      this.text.split("\n").forEach((raw) => {
        const line = raw.replace(/\s+$/, "");
        const bullet = /^\s*(?:[-*\u2022])\s+(.*)$/.exec(line);
        if (bullet) {
          if (!list) container.append((list = h("ul")));
          const item = h("li");
          this.inline(item, bullet[1]);
          list.append(item);
          para = null;
          return;
        }
        list = null;
        if (!line.trim()) {
          para = null;
          return;
        }
        if (para) para.append(h("br"));
        else container.append((para = h("p")));
        this.inline(para, line);
      });
      if (streaming) {
        let last = container.lastElementChild;
        if (last && last.tagName === "UL") last = last.lastElementChild;
        (last || container).append(h("span", { class: "caret", "aria-hidden": "true" }));
      }
    }

    inline(parent, line) {
      const pattern = /\[(\d+)\]/g;
      let at = 0;
      let match;
      while ((match = pattern.exec(line))) {
        if (match.index > at) parent.append(line.slice(at, match.index));
        const n = Number(match[1]);
        const citation = this.citation(n);
        if (citation) {
          parent.append(
            h("button", {
              type: "button",
              class: "ref",
              "data-n": String(n),
              "aria-label": `Source ${n}: ${sourceLabel(citation)}`,
              "aria-expanded": this.openN === n ? "true" : "false",
              title: sourceLabel(citation),
              text: String(n),
              onclick: () => this.togglePassage(n),
            }),
          );
        } else if (this.citations === null) {
          parent.append(
            h("span", { class: "ref pending", "aria-hidden": "true", text: String(n) }),
          );
        } else {
          parent.append(match[0]); // a marker that points to nothing stays plain text
        }
        at = pattern.lastIndex;
      }
      if (at < line.length) parent.append(line.slice(at));
    }

    citation(n) {
      return this.citations?.find((c) => c.n === n) ?? null;
    }

    finish() {
      this.render(false);
      if (this.abstained) {
        this.el.classList.add("abstained");
        this.el.setAttribute("aria-label", "Not in the documents");
        this.body.before(
          h("div", { class: "abstain-label" }, [icon("notfound"), "Not in the documents"]),
        );
        this.body.append(
          h("p", {
            class: "abstain-hint",
            text: "The documents do not seem to cover this. Try other words, or ask about something they describe.",
          }),
        );
      }
      if (this.citations && this.citations.length) {
        this.chips = h(
          "ul",
          { class: "chips" },
          this.citations.map((c) =>
            h("li", {}, [
              h(
                "button",
                {
                  type: "button",
                  class: "chip",
                  "data-n": String(c.n),
                  "aria-expanded": "false",
                  "aria-label": `Source ${c.n}: ${sourceLabel(c)}`,
                  title: sourceLabel(c),
                  onclick: () => this.togglePassage(c.n),
                },
                [
                  h("span", { class: "chip-n", "aria-hidden": "true", text: String(c.n) }),
                  h("span", {
                    class: "chip-text",
                    text: shortSection(c.section || "") || c.title || c.doc,
                  }),
                ],
              ),
            ]),
          ),
        );
        this.passage = h("div", { class: "passage", role: "region", hidden: true });
        this.el.append(
          h("div", { class: "sources" }, [
            h("span", { class: "sources-label", text: "Sources" }),
            this.chips,
            this.passage,
          ]),
        );
      }
      if (this.answerId) this.el.append(this.feedbackRow());
    }

    async togglePassage(n) {
      if (this.openN === n) {
        this.closePassage();
        return;
      }
      const c = this.citation(n);
      if (!c || !this.passage) return;
      this.openN = n;
      this.syncExpanded();
      // The quote at once; its context when /api/documents answers.
      const key = `${c.doc}|${c.start}|${c.end}`;
      this.showPassage(c, state.passages.get(key) || null, false);
      if (state.passages.has(key)) return;
      try {
        const passage = await call("GET", `${documentPath(c.doc)}?start=${c.start}&end=${c.end}`);
        state.passages.set(key, passage);
        if (this.openN === n) this.showPassage(c, passage, false);
      } catch {
        if (this.openN === n) this.showPassage(c, null, true);
      }
    }

    closePassage() {
      this.openN = null;
      this.passage.hidden = true;
      this.syncExpanded();
    }

    syncExpanded() {
      const open = this.openN;
      for (const button of this.el.querySelectorAll(".chip, .ref[data-n]")) {
        button.setAttribute("aria-expanded", Number(button.dataset.n) === open ? "true" : "false");
      }
    }

    /* The cited span, highlighted, between the text before and after it. */
    showPassage(c, passage, failed) {
      const p = passage || c;
      // Runs of blank lines (page breaks, spaced headings) say nothing in a small box.
      let before = passage ? passage.before.replace(/\n\s*\n\s*\n/g, "\n\n") : "";
      const after = passage ? passage.after.replace(/\n\s*\n\s*\n/g, "\n\n") : "";
      const textNodes = [];
      if (before) {
        const cutBefore = p.start - before.length > 0;
        if (cutBefore) before = PASSAGE_CONTEXT_MARK + before.replace(/^\S*\s/, "");
        textNodes.push(before);
      }
      const mark = h("mark", { text: p.quote });
      textNodes.push(mark);
      if (after) {
        const complete = /[.!?:;]\s*$/.test(after);
        textNodes.push(complete ? after : after.replace(/\s\S*$/, "") + PASSAGE_CONTEXT_MARK);
      }
      const section = [p.section, p.page ? `page ${p.page}` : ""].filter(Boolean).join(" \u00b7 ");
      this.passage.setAttribute("aria-label", `Source ${c.n}: ${sourceLabel(c)}`);
      const parts = [
        h("div", { class: "passage-head" }, [
          h("span", { class: "chip-n", "aria-hidden": "true", text: String(c.n) }),
          h("div", { class: "passage-meta" }, [
            h("div", { class: "passage-title", text: p.title || p.doc }),
            section ? h("div", { class: "passage-section", text: section }) : null,
            h("div", { class: "passage-doc" }, [icon("doc"), p.doc]),
          ]),
          h(
            "button",
            {
              type: "button",
              class: "icon-btn",
              "aria-label": "Close the source",
              title: "Close the source",
              onclick: () => {
                const n = this.openN;
                this.closePassage();
                this.el.querySelector(`.chip[data-n='${n}']`)?.focus();
              },
            },
            [icon("close")],
          ),
        ]),
        h("blockquote", { class: "passage-text" }, textNodes),
      ];
      if (failed)
        parts.push(
          h("p", { class: "passage-note", text: "The surrounding text could not be loaded." }),
        );
      this.passage.replaceChildren(...parts);
      this.passage.hidden = false;
      const box = this.passage.querySelector(".passage-text");
      // Show the highlight inside the passage box, and the box inside the conversation.
      box.scrollTop = Math.max(0, mark.offsetTop - box.offsetTop - 40);
      this.passage.scrollIntoView({ block: "nearest" });
    }

    feedbackRow() {
      const given = ratingsGiven()[this.answerId];
      const status = h("span", { class: "feedback-status", role: "status" });
      const up = h(
        "button",
        {
          type: "button",
          class: "icon-btn thumb",
          "data-rating": "up",
          "aria-label": "Helpful",
          title: "Helpful",
          "aria-pressed": "false",
          onclick: () => this.rate("up", ""),
        },
        [icon("up")],
      );
      const down = h(
        "button",
        {
          type: "button",
          class: "icon-btn thumb",
          "data-rating": "down",
          "aria-label": "Not helpful",
          title: "Not helpful",
          "aria-pressed": "false",
          onclick: () => this.askWhy(),
        },
        [icon("down")],
      );
      const comment = h("textarea", {
        id: `aw-why-${this.answerId}`,
        maxlength: "4000",
        placeholder: "What was wrong or missing?",
      });
      this.form = h(
        "form",
        {
          class: "feedback-form",
          hidden: true,
          onsubmit: (event) => {
            event.preventDefault();
            this.rate("down", comment.value.trim());
          },
          onkeydown: (event) => {
            if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
              event.preventDefault();
              this.rate("down", comment.value.trim());
            }
          },
        },
        [
          h("label", { for: `aw-why-${this.answerId}`, text: "What was wrong? (optional)" }),
          comment,
          h("div", { class: "row" }, [
            h("button", {
              type: "button",
              class: "btn btn-quiet",
              text: "Skip",
              onclick: () => this.rate("down", ""),
            }),
            h("button", { type: "submit", class: "btn btn-primary", text: "Send feedback" }),
          ]),
        ],
      );
      this.thumbs = { up, down, status, comment };
      const row = h("div", { class: "feedback-wrap" }, [
        h("div", { class: "feedback", role: "group", "aria-label": "Rate this answer" }, [
          h("span", { class: "feedback-q", text: "Was this helpful?" }),
          up,
          down,
          status,
        ]),
        this.form,
      ]);
      if (given) this.markRated(given);
      return row;
    }

    askWhy() {
      this.form.hidden = !this.form.hidden;
      this.thumbs.down.setAttribute("aria-pressed", this.form.hidden ? "false" : "true");
      if (!this.form.hidden) {
        this.thumbs.comment.focus();
        this.form.scrollIntoView({ block: "nearest" });
      }
    }

    markRated(rating) {
      const t = this.thumbs;
      t.up.disabled = t.down.disabled = true;
      t.up.setAttribute("aria-pressed", rating === "up" ? "true" : "false");
      t.down.setAttribute("aria-pressed", rating === "down" ? "true" : "false");
      t.status.className = "feedback-status ok";
      t.status.replaceChildren(icon("check"), "Thanks for your feedback");
    }

    async rate(rating, comment) {
      const t = this.thumbs;
      const controls = [t.up, t.down, ...this.form.querySelectorAll("button, textarea")];
      for (const control of controls) control.disabled = true;
      t.status.className = "feedback-status";
      t.status.textContent = "Sending\u2026";
      const body = { answer_id: this.answerId, rating };
      if (comment) body.comment = comment;
      try {
        await call("POST", "/api/feedback", body);
      } catch {
        for (const control of controls) control.disabled = false;
        t.status.className = "feedback-status failed";
        t.status.textContent = "Could not send your feedback; try again.";
        return;
      }
      rememberRating(this.answerId, rating);
      const hadFocus = this.form.contains(this.el.getRootNode().activeElement);
      this.form.hidden = true;
      this.markRated(rating);
      if (hadFocus) ui.input.focus();
    }
  }

  function addAnswer(turn) {
    const view = new AnswerView();
    view.text = turn.content || "";
    view.citations = turn.citations || [];
    view.abstained = !!turn.abstained;
    view.answerId = turn.answer_id || null;
    view.finish();
    append(view.el);
    return view;
  }

  function describeError(err) {
    const detail =
      err.message && err.message.length > 300 ? `${err.message.slice(0, 300)}\u2026` : err.message;
    switch (err.kind) {
      case "network":
        return {
          title: "Can\u2019t reach the assistant",
          text: "The service may be down or restarting, or this website may not be allowed to use it. Check your connection and try again.",
        };
      case "timeout":
        return {
          title: "The assistant is taking too long",
          text: "No answer arrived in time. Try again in a moment.",
        };
      case "stream":
        return { title: "The answer was interrupted", text: detail || "The connection was lost." };
      case "browser":
        return { title: "This browser cannot show answers", text: detail };
      default:
        // The service's own message (a JSON `detail` or the stream's `error` event) says why.
        if (err.status === 401 || err.status === 403) {
          return {
            title: "The assistant refused this website",
            text: "It needs a valid API key (data-api-key).",
            detail,
          };
        }
        if (err.status === 429)
          return {
            title: "Too many questions at once",
            text: "Wait a moment before asking again.",
            detail,
          };
        if (err.status >= 500)
          return {
            title: "The assistant ran into a problem",
            text: "It could not answer this question.",
            detail,
          };
        return {
          title: "This question could not be answered",
          text: detail || "The service refused it.",
        };
    }
  }

  /* An error card: what went wrong, the service's message, and Retry for network errors only. */
  function showError(err, retry, questionRestored = false) {
    const info = describeError(err);
    const code = err.status ? ` (HTTP ${err.status})` : "";
    const card = h("div", { class: "msg-error", role: "alert" }, [
      icon("alert"),
      h("div", { class: "msg-error-body" }, [
        h("strong", { text: info.title }),
        h("p", { text: info.text }),
        info.detail ? h("p", { class: "detail", text: info.detail + code }) : null,
        questionRestored
          ? h("p", { class: "restored", text: "Your question is back in the box below." })
          : null,
        err.retryable && retry
          ? h(
              "button",
              {
                type: "button",
                class: "btn retry",
                onclick: () => {
                  if (state.busy) return;
                  card.remove();
                  retry();
                },
              },
              [icon("retry"), "Retry"],
            )
          : null,
      ]),
    ]);
    append(card);
    scrollToEnd(true);
    return card;
  }

  /* -- asking --------------------------------------------------------------------------- */

  async function ask(question, isRetry = false) {
    if (state.busy) return;
    if (!isRetry) addUserMessage(question);
    const view = new AnswerView();
    view.showTyping();
    append(view.el);
    scrollToEnd(true);
    setBusy(true);
    const controller = new AbortController();
    state.controller = controller;
    const sentWith = state.conversationId;
    let done = null;
    let failure = null;
    let frame = 0;

    // Deltas arrive faster than frames: draw the text once per frame at most.
    const paint = () => {
      frame = 0;
      const stick = isNearEnd();
      view.render(true);
      scrollToEnd(stick);
    };

    const onEvent = (name, data) => {
      let payload;
      try {
        payload = JSON.parse(data);
      } catch {
        return; // not one of ours
      }
      if (name === "delta" && typeof payload.text === "string") {
        view.text += payload.text;
        frame ||= requestAnimationFrame(paint);
      } else if (name === "citations") {
        view.citations = payload.citations || [];
      } else if (name === "done") {
        done = payload;
        // The final text is authoritative: a generated answer that broke off midway was
        // replaced by the answer from the documents, whose citations are the ones sent.
        if (typeof payload.answer === "string" && payload.answer !== view.text) {
          view.text = payload.answer;
          frame ||= requestAnimationFrame(paint);
        }
      } else if (name === "error") {
        const status = Number(payload.status) || 0;
        failure = new ServiceError("http", status, String(payload.detail || ""));
      }
    };

    try {
      await streamChat(question, sentWith, onEvent, controller);
      if (failure) throw failure;
      if (!done) throw new ServiceError("stream", 0, "The answer stopped before it was complete.");
    } catch (err) {
      cancelAnimationFrame(frame);
      if (state.controller !== controller) return; // replaced by a new conversation
      view.el.remove();
      finishAsking(controller);
      if (err.kind === "aborted") return;
      if (
        err.kind === "http" &&
        err.status === 404 &&
        sentWith &&
        sentWith === state.conversationId
      ) {
        // The service no longer knows this conversation (its data was reset): start anew.
        forgetConversation();
        addNote(
          "The earlier conversation is no longer on the server; this question starts a new one.",
        );
        ask(question, true);
        return;
      }
      // Not worth resending as it is: the question goes back into an empty box to be changed
      // (a question too long) or sent again later (the service overloaded or failing).
      const restore = !err.retryable && !ui.input.value.trim();
      if (restore) {
        ui.input.value = question;
        autoGrow();
      }
      showError(err, () => ask(question, true), restore);
      return;
    }
    cancelAnimationFrame(frame);
    if (state.controller !== controller) return;
    state.conversationId = done.conversation_id;
    storageSet("localStorage", "conversation", done.conversation_id);
    view.citations ||= [];
    view.abstained = Boolean(done.abstained);
    view.answerId = done.answer_id;
    const stick = isNearEnd();
    view.finish();
    scrollToEnd(stick);
    finishAsking(controller);
  }

  function finishAsking(controller) {
    if (state.controller === controller) state.controller = null;
    setBusy(false);
  }

  function forgetConversation() {
    state.conversationId = null;
    storageSet("localStorage", "conversation", null);
  }

  function newConversation() {
    if (state.controller) state.controller.abort("new conversation");
    state.controller = null;
    state.restoring = null;
    setBusy(false);
    forgetConversation();
    state.restored = true;
    showWelcome();
    ui.input.focus();
  }

  /* The conversation of an earlier visit: its turns from the service. */
  async function restore() {
    state.restored = true;
    const id = state.conversationId;
    if (!id) return;
    const token = {};
    state.restoring = token; // a new conversation meanwhile makes this restore moot
    setBusy(true);
    const loading = addNote("Loading your conversation\u2026");
    try {
      const conversation = await call("GET", `/api/conversations/${encodeURIComponent(id)}`);
      if (state.restoring !== token) return;
      loading.remove();
      for (const turn of conversation.turns) {
        if (turn.role === "user") addUserMessage(turn.content);
        else addAnswer(turn);
      }
      if (!conversation.turns.length) showWelcome();
      scrollToEnd(true);
    } catch (err) {
      if (state.restoring !== token) return;
      loading.remove();
      if (err.kind === "http" && err.status === 404) {
        forgetConversation(); // gone from the service (its data was reset): start afresh
        showWelcome();
      } else {
        showError(err, () => restore());
      }
    } finally {
      if (state.restoring === token) {
        state.restoring = null;
        setBusy(false);
      }
    }
  }

  /* -- start ---------------------------------------------------------------------------- */

  // For the host page: a button of its own can open the panel.
  window.AssistantWidget = {
    open: () => open(),
    close: () => close(),
    newConversation: () => newConversation(),
  };

  if (document.body) build();
  else document.addEventListener("DOMContentLoaded", build, { once: true });
})();
