/*
 * Tidings chat widget: one <script src=".../widget.js" defer> adds a floating Help button and
 * a chat panel to any page.
 *
 *   <script src="https://help.example.com/widget.js"
 *           data-gateway="https://help.example.com" data-title="Bookstore help" defer></script>
 *
 * Plain modern JavaScript, no dependencies, no build step, nothing fetched from a CDN. It is
 * written for a strict Content-Security-Policy: no inline scripts, no inline event handlers,
 * no HTML strings (every node is built with the DOM API and text goes in with textContent),
 * and the styles come from widget.css inside a Shadow DOM root so the host page's CSS and the
 * widget's never mix. See docs/widget.md for the attributes and the JavaScript API.
 */
(() => {
  "use strict";

  if (window.TidingsWidget) return; // loaded twice: the first copy owns the page

  const script = document.currentScript;
  const data = (script && script.dataset) || {};
  const scriptUrl = script && script.src ? new URL(script.src, location.href) : null;
  // Default gateway: wherever widget.js itself was served from (keeps any path prefix).
  const defaultBase = scriptUrl
    ? scriptUrl.href.replace(/[?#].*$/, "").replace(/\/widget\.js$/, "")
    : location.origin;
  const config = {
    base: (data.gateway || defaultBase).replace(/\/+$/, ""),
    title: data.title || "Help",
    label: data.buttonLabel || "Help",
    greeting:
      data.greeting || "Hi! Ask a question about orders, shipping, returns or anything else.",
    token: data.token || null,
    persist: data.persist === "local" ? "local" : "session",
  };
  const cssUrl = scriptUrl ? new URL("widget.css", scriptUrl).href : `${config.base}/widget.css`;

  const STREAM_STALL_MS = 45000; // the gateway sends a heartbeat every ~15 s
  const STOP_WAIT_MS = 8000; // how long Stop waits for the server to confirm
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
  const LOCAL_HISTORY_LIMIT = 50;
  const OFFLINE_STATUS = "You're offline. Waiting for the network…";

  /* ------------------------------------------------------------------ storage */

  /** Per-gateway state that survives a reload: session id, the answer in flight, the panel. */
  const store = (() => {
    const key = `tidings-widget:${config.base}`;
    let backend = null;
    try {
      backend = config.persist === "local" ? window.localStorage : window.sessionStorage;
      backend.setItem(`${key}:probe`, "1");
      backend.removeItem(`${key}:probe`);
    } catch {
      backend = null; // storage disabled (privacy mode): the widget works, without reloads
    }
    let memory = {};
    const read = () => {
      if (!backend) return memory;
      try {
        return JSON.parse(backend.getItem(key) || "{}") || {};
      } catch {
        return {};
      }
    };
    const write = (value) => {
      memory = value;
      if (!backend) return;
      try {
        backend.setItem(key, JSON.stringify(value));
      } catch {
        /* quota exceeded: keep going with what is in memory */
      }
    };
    return {
      get: (name) => read()[name],
      set(name, value) {
        const state = read();
        if (value === undefined || value === null) delete state[name];
        else state[name] = value;
        write(state);
      },
    };
  })();

  /* ------------------------------------------------------------------ HTTP */

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  let token = config.token;
  let tokenProvider = null;

  async function authHeaders(refresh) {
    if (tokenProvider && (refresh || !token)) {
      token = (await tokenProvider()) || null;
    }
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  function apiUrl(path, params) {
    const url = new URL(config.base + path, location.href);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    return url.href;
  }

  async function errorFrom(response) {
    let code = `http_${response.status}`;
    let message = response.statusText || "Request failed";
    try {
      const body = await response.json();
      if (body && body.error) {
        code = String(body.error.code || code);
        message = String(body.error.message || message);
      }
    } catch {
      /* not JSON: keep the status */
    }
    const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    return new ApiError(response.status, code, message, Number.isFinite(retry) ? retry : null);
  }

  /** fetch() with the bearer token; a 401 asks the token provider once for a fresh token. */
  async function request(url, init) {
    let response = null;
    for (const refresh of [false, true]) {
      const headers = { ...(init.headers || {}), ...(await authHeaders(refresh)) };
      response = await fetch(url, { ...init, headers, credentials: "omit" });
      if (response.status !== 401 || !tokenProvider) break;
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  async function postJson(path, body) {
    const response = await request(apiUrl(path), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    return response.json();
  }

  /* ------------------------------------------------------------------ SSE */

  /** A WHATWG Server-Sent Events parser fed with decoded text chunks. */
  class SseParser {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.buffer = "";
      this.data = [];
      this.event = "";
      this.lastId = null;
    }

    push(chunk) {
      this.buffer += chunk;
      const terminator = /\r\n|\r|\n/g;
      let start = 0;
      let match;
      while ((match = terminator.exec(this.buffer)) !== null) {
        // A lone \r at the very end may be the first half of \r\n: wait for more text.
        if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
        this.line(this.buffer.slice(start, match.index));
        start = match.index + match[0].length;
      }
      this.buffer = this.buffer.slice(start);
    }

    line(line) {
      if (line === "") {
        this.dispatch();
        return;
      }
      if (line.startsWith(":")) return; // a comment: the heartbeat
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id" && !value.includes("\0")) this.lastId = value;
    }

    dispatch() {
      const name = this.event || "message";
      const payload = this.data.join("\n");
      const hasData = this.data.length > 0;
      this.data = [];
      this.event = "";
      if (hasData) this.onEvent(name, payload, this.lastId);
    }
  }

  /* ------------------------------------------------------------------ Markdown */

  const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

  /** The URL as an href if it is an absolute http(s) or mailto URL, else null. */
  function safeHref(raw) {
    const text = String(raw || "").trim();
    if (!/^(https?:\/\/|mailto:)/i.test(text)) return null;
    try {
      const url = new URL(text);
      return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
    } catch {
      return null;
    }
  }

  function link(href, label) {
    const a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = label;
    return a;
  }

  // Inline syntax, first match wins: code, bold, italic, [label](url), <url>, bare URL.
  const INLINE = new RegExp(
    [
      "(`+)([^`]|[^`][\\s\\S]*?[^`])\\1(?!`)", // 1,2: code span
      "\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*", // 3: bold
      "__(?=\\S)([\\s\\S]*?\\S)__(?!\\w)", // 4: bold
      "\\*(?=[^\\s*])([\\s\\S]*?[^\\s*])\\*(?!\\*)", // 5: italic
      "(?<![\\w])_(?=\\S)([\\s\\S]*?\\S)_(?!\\w)", // 6: italic
      "\\[([^\\]\\n]+)\\]\\(\\s*<?([^\\s()<>]*(?:\\([^\\s()]*\\)[^\\s()<>]*)*)>?(?:\\s+\"[^\"\\n]*\")?\\s*\\)", // 7,8
      "<((?:https?:\\/\\/|mailto:)[^\\s<>]+)>", // 9: autolink
      "(https?:\\/\\/[^\\s<>]*[^\\s<>.,;:!?'\")\\]])", // 10: bare URL
    ].join("|"),
    "g",
  );

  /** Append `text`'s inline Markdown to `parent` as DOM nodes (never as HTML). */
  function renderInline(text, parent, depth) {
    if (depth > 4) {
      parent.append(text);
      return;
    }
    INLINE.lastIndex = 0;
    const matches = [...text.matchAll(INLINE)];
    let at = 0;
    for (const m of matches) {
      if (m.index > at) parent.append(text.slice(at, m.index));
      at = m.index + m[0].length;
      if (m[2] !== undefined) {
        const code = document.createElement("code");
        code.textContent = m[2];
        parent.append(code);
      } else if (m[3] !== undefined || m[4] !== undefined) {
        const strong = document.createElement("strong");
        renderInline(m[3] ?? m[4], strong, depth + 1);
        parent.append(strong);
      } else if (m[5] !== undefined || m[6] !== undefined) {
        const em = document.createElement("em");
        renderInline(m[5] ?? m[6], em, depth + 1);
        parent.append(em);
      } else if (m[7] !== undefined) {
        const href = safeHref(m[8]);
        if (href) {
          const a = link(href, "");
          renderInline(m[7], a, depth + 1);
          parent.append(a);
        } else {
          renderInline(m[7], parent, depth + 1); // unsafe or relative target: the label only
        }
      } else {
        const raw = m[9] ?? m[10];
        const href = safeHref(raw);
        parent.append(href ? link(href, raw) : raw);
      }
    }
    if (at < text.length) parent.append(text.slice(at));
  }

  function paragraph(lines) {
    const p = document.createElement("p");
    lines.forEach((line, i) => {
      if (i > 0) p.append(document.createElement("br"));
      renderInline(line, p, 0);
    });
    return p;
  }

  const LIST_ITEM = /^\s{0,3}(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/;

  /**
   * A small, safe Markdown subset: paragraphs, line breaks, headings (shown as bold lines),
   * lists, block quotes, fenced code, and the inline syntax above. Anything else, including
   * raw HTML, stays literal text.
   */
  function renderMarkdown(source) {
    const fragment = document.createDocumentFragment();
    const lines = String(source).replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = /^\s{0,3}(```|~~~)/.exec(line);
      if (fence) {
        const body = [];
        i += 1;
        while (i < lines.length && !lines[i].trimStart().startsWith(fence[1])) {
          body.push(lines[i]);
          i += 1;
        }
        i += 1;
        const pre = document.createElement("pre");
        const code = document.createElement("code");
        code.textContent = body.join("\n");
        pre.append(code);
        fragment.append(pre);
        continue;
      }
      if (!line.trim()) {
        i += 1;
        continue;
      }
      const heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
      if (heading) {
        const p = document.createElement("p");
        p.className = "heading";
        const strong = document.createElement("strong");
        renderInline(heading[1], strong, 0);
        p.append(strong);
        fragment.append(p);
        i += 1;
        continue;
      }
      if (/^\s{0,3}>/.test(line)) {
        const quoted = [];
        while (i < lines.length && /^\s{0,3}>/.test(lines[i])) {
          quoted.push(lines[i].replace(/^\s{0,3}>\s?/, ""));
          i += 1;
        }
        const quote = document.createElement("blockquote");
        quote.append(renderMarkdown(quoted.join("\n")));
        fragment.append(quote);
        continue;
      }
      const item = LIST_ITEM.exec(line);
      if (item) {
        const ordered = item[2] !== undefined;
        const list = document.createElement(ordered ? "ol" : "ul");
        if (ordered && item[2] !== "1") list.start = Number.parseInt(item[2], 10);
        while (i < lines.length) {
          const next = LIST_ITEM.exec(lines[i]);
          if (!next || (next[2] !== undefined) !== ordered) break;
          const li = document.createElement("li");
          const content = [next[3]];
          i += 1;
          // Indented lines continue the item.
          while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !LIST_ITEM.exec(lines[i])) {
            content.push(lines[i].trim());
            i += 1;
          }
          content.forEach((text, n) => {
            if (n > 0) li.append(document.createElement("br"));
            renderInline(text, li, 0);
          });
          list.append(li);
        }
        fragment.append(list);
        continue;
      }
      const block = [];
      while (
        i < lines.length &&
        lines[i].trim() &&
        !LIST_ITEM.test(lines[i]) &&
        !/^\s{0,3}(```|~~~|#{1,6}\s|>)/.test(lines[i])
      ) {
        block.push(lines[i]);
        i += 1;
      }
      fragment.append(paragraph(block));
    }
    return fragment;
  }

  /* ------------------------------------------------------------------ DOM helpers */

  /** Build an element: properties and attributes from `props`, children appended as nodes. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") el.className = value;
      else if (name === "text") el.textContent = value;
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) el.append(child);
    return el;
  }

  /** A decorative inline SVG icon (built with the DOM API, hidden from assistive tech). */
  function icon(pathData) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", pathData);
    svg.append(path);
    return svg;
  }

  const ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    close: "M6 6l12 12M18 6L6 18",
    fresh: "M4 12a8 8 0 1 0 2.3-5.7M4 4v4h4",
    send: "M4 12l16-8-6 16-2.5-6.5z",
    stop: "M7 7h10v10H7z",
  };

  /* ------------------------------------------------------------------ messages shown */

  const ERROR_TEXT = {
    rate_limited: (retry) =>
      `You're sending messages faster than we can answer. Please wait ${
        retry ? `${retry} seconds` : "a few seconds"
      } and send it again.`,
    unavailable:
      "The assistant is unavailable right now. Your message was kept: please try again in a minute.",
    timeout: "This answer took too long. Please ask again; a shorter question can help.",
    failed: "Something went wrong while answering. Please try again.",
    too_large: "That message is too long. Please shorten it and send it again.",
    offline: "We can't reach the help service. Check your connection, then send it again.",
    auth: "Your sign-in has expired. Please reload the page and try again.",
    gone: "This conversation is no longer available. A new one has been started: please ask again.",
    lost: "This answer is no longer available. Please ask again.",
    invalid: "That message could not be sent. Please check it and try again.",
  };

  /** A kind sentence for a failed request, saying what to do next. */
  function describeRequestError(error) {
    if (!(error instanceof ApiError)) return ERROR_TEXT.offline;
    if (error.status === 429) return ERROR_TEXT.rate_limited(error.retryAfter);
    if (error.status === 413) return ERROR_TEXT.too_large;
    if (error.status === 401 || error.status === 403) return ERROR_TEXT.auth;
    if (error.status === 404) return ERROR_TEXT.gone;
    if (error.status >= 500) return ERROR_TEXT.unavailable;
    return ERROR_TEXT.invalid;
  }

  /* ------------------------------------------------------------------ the widget */

  class Widget {
    constructor() {
      this.host = h("div", { id: "tidings-widget", "data-tidings-widget": "" });
      this.root = this.host.attachShadow({ mode: "open" });
      this.uid = Math.random().toString(36).slice(2, 8);
      this.messages = new Map(); // `${role}:${message_id}` -> entry
      this.pending = null; // the answer being streamed
      this.build();
    }

    /* ---------- layout */

    build() {
      const titleId = `tidings-title-${this.uid}`;
      const inputId = `tidings-input-${this.uid}`;
      const panelId = `tidings-panel-${this.uid}`;
      const stylesheet = h("link", { rel: "stylesheet", href: cssUrl });
      // Nothing is shown before the styles apply, so no unstyled flash on slow networks.
      this.host.hidden = true;
      stylesheet.addEventListener("load", () => {
        this.host.hidden = false;
      });
      stylesheet.addEventListener("error", () => {
        this.host.hidden = false;
      });

      this.launcher = h(
        "button",
        {
          type: "button",
          class: "launcher",
          "aria-haspopup": "dialog",
          "aria-expanded": "false",
          "aria-controls": panelId,
          onclick: () => (this.isOpen() ? this.close() : this.open()),
        },
        icon(ICONS.chat),
        h("span", { text: config.label }),
      );

      this.title = h("h2", { id: titleId, class: "title", text: config.title });
      this.freshButton = h(
        "button",
        {
          type: "button",
          class: "icon-button",
          "aria-label": "Start a new conversation",
          title: "New conversation",
          onclick: () => this.newConversation(),
        },
        icon(ICONS.fresh),
      );
      this.closeButton = h(
        "button",
        {
          type: "button",
          class: "icon-button",
          "aria-label": "Close help",
          title: "Close",
          onclick: () => this.close(),
        },
        icon(ICONS.close),
      );
      this.status = h("p", { class: "status", role: "status", "aria-live": "polite" });
      this.log = h("div", {
        class: "log",
        role: "log",
        "aria-live": "polite",
        "aria-relevant": "additions text",
        "aria-label": "Conversation",
        tabindex: "0",
      });
      this.intro = h("p", { class: "intro", text: config.greeting });
      this.log.append(this.intro);
      this.notice = h("div", { class: "notice", role: "alert", hidden: true });

      this.input = h("textarea", {
        id: inputId,
        class: "input",
        rows: "1",
        maxlength: "4000",
        placeholder: "Type your question…",
        autocomplete: "off",
        enterkeyhint: "send",
      });
      this.input.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          this.submit();
        }
      });
      this.input.addEventListener("input", () => this.fitInput());
      this.sendButton = h(
        "button",
        { type: "submit", class: "send", "aria-label": "Send message", title: "Send" },
        icon(ICONS.send),
      );
      this.stopButton = h(
        "button",
        {
          type: "button",
          class: "stop",
          hidden: true,
          onclick: () => this.stop(),
        },
        icon(ICONS.stop),
        h("span", { text: "Stop" }),
      );
      this.form = h(
        "form",
        { class: "composer", novalidate: true },
        h("label", { for: inputId, class: "visually-hidden", text: "Your message" }),
        this.input,
        this.stopButton,
        this.sendButton,
      );
      this.form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.submit();
      });

      this.panel = h(
        "div",
        {
          id: panelId,
          class: "panel",
          role: "dialog",
          "aria-modal": "true",
          "aria-labelledby": titleId,
          hidden: true,
        },
        h(
          "div",
          { class: "header" },
          this.title,
          h("div", { class: "actions" }, this.freshButton, this.closeButton),
        ),
        this.status,
        this.log,
        this.notice,
        this.form,
      );
      this.panel.addEventListener("keydown", (event) => this.onPanelKey(event));

      this.root.append(stylesheet, this.panel, this.launcher);
    }

    fitInput() {
      this.input.style.height = "auto";
      this.input.style.height = `${Math.min(this.input.scrollHeight, 140)}px`;
    }

    /* ---------- open, close, focus */

    isOpen() {
      return !this.panel.hidden;
    }

    open({ focus = true } = {}) {
      this.panel.hidden = false;
      this.host.classList.add("open");
      this.launcher.setAttribute("aria-expanded", "true");
      store.set("open", true);
      this.scrollToEnd();
      if (focus) this.input.focus();
    }

    close() {
      if (!this.isOpen()) return;
      this.panel.hidden = true;
      this.host.classList.remove("open");
      this.launcher.setAttribute("aria-expanded", "false");
      store.set("open", false);
      this.launcher.focus();
    }

    focusables() {
      return [...this.panel.querySelectorAll("button, textarea, a[href], [tabindex]")].filter(
        (el) => !el.disabled && !el.hidden && el.getClientRects().length > 0,
      );
    }

    onPanelKey(event) {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        this.close();
        return;
      }
      if (event.key !== "Tab") return;
      // Focus stays inside the open panel (it is a modal dialog).
      const items = this.focusables();
      if (!items.length) return;
      const first = items[0];
      const last = items[items.length - 1];
      const active = this.root.activeElement;
      if (event.shiftKey && (active === first || !this.panel.contains(active))) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && (active === last || !this.panel.contains(active))) {
        event.preventDefault();
        first.focus();
      }
    }

    /* ---------- conversation rendering */

    scrollToEnd() {
      this.log.scrollTop = this.log.scrollHeight;
    }

    /** Add (or return) the bubble of one turn; `key` keeps a turn from being shown twice. */
    entry(role, messageId) {
      const key = `${role}:${messageId}`;
      let entry = this.messages.get(key);
      if (entry) return entry;
      const who = h("span", {
        class: "visually-hidden",
        text: role === "user" ? "You said: " : "Assistant said: ",
      });
      const body = h("div", { class: "body" });
      const el = h(
        "div",
        { class: `message ${role}`, "data-role": role, "data-message-id": messageId },
        who,
        body,
      );
      entry = { key, role, messageId, el, body, text: "", sources: [], state: "done" };
      this.messages.set(key, entry);
      this.intro.hidden = true;
      this.log.append(el);
      this.scrollToEnd();
      return entry;
    }

    /** Show `text` in the bubble (Markdown for answers, plain text for what the user typed). */
    paint(entry) {
      const { body } = entry;
      body.replaceChildren();
      if (entry.role === "user") {
        body.append(h("p", { text: entry.text }));
      } else if (entry.text) {
        body.append(renderMarkdown(entry.text));
      }
      if (entry.role === "assistant" && entry.state === "waiting" && !entry.text) {
        body.append(
          h(
            "span",
            { class: "typing" },
            h("span", { class: "visually-hidden", text: "The assistant is typing" }),
            h("span", { class: "dot", "aria-hidden": "true" }),
            h("span", { class: "dot", "aria-hidden": "true" }),
            h("span", { class: "dot", "aria-hidden": "true" }),
          ),
        );
      }
      const links = (entry.sources || [])
        .map((source) => ({ source, href: safeHref(source && source.url) }))
        .filter(({ source }) => source && source.title);
      if (links.length) {
        const list = h("ul", { class: "sources-list" });
        for (const { source, href } of links) {
          list.append(
            h("li", null, href ? link(href, source.title) : h("span", { text: source.title })),
          );
        }
        body.append(h("div", { class: "sources" }, h("p", { text: "Sources" }), list));
      }
      if (entry.note) {
        const note = h("p", { class: `note ${entry.state}`, text: entry.note });
        if (entry.retry) {
          note.append(
            " ",
            h("button", {
              type: "button",
              class: "retry",
              text: "Ask again",
              onclick: () => this.askAgain(entry),
            }),
          );
        }
        body.append(note);
      }
      entry.el.dataset.state = entry.state;
      // The store's tools (order_status, recommendations): the CSS lays their lists out.
      if (entry.tool) entry.el.dataset.tool = entry.tool;
      else delete entry.el.dataset.tool;
      entry.el.setAttribute("aria-busy", entry.state === "waiting" || entry.state === "streaming");
      this.scrollToEnd();
    }

    /** Schedule one repaint per frame while tokens stream in. */
    repaintSoon(entry) {
      if (entry.frame) return;
      entry.frame = requestAnimationFrame(() => {
        entry.frame = 0;
        this.paint(entry);
      });
    }

    setStatus(text) {
      this.status.textContent = text || "";
    }

    showNotice(text) {
      this.notice.replaceChildren(h("p", { text }));
      this.notice.hidden = false;
    }

    clearNotice() {
      this.notice.hidden = true;
      this.notice.replaceChildren();
    }

    /** Swap Send and Stop, keeping the keyboard focus on whichever replaces the other. */
    setBusy(busy) {
      const active = this.root.activeElement;
      this.stopButton.hidden = !busy;
      this.sendButton.hidden = busy;
      if (busy && active === this.sendButton) this.stopButton.focus();
      if (!busy && active === this.stopButton && this.isOpen()) this.input.focus();
    }

    /** Remember finished turns locally too: history may lag behind the memory worker. */
    remember(entry) {
      const turns = (store.get("turns") || []).filter(
        (t) => !(t.role === entry.role && t.message_id === entry.messageId),
      );
      turns.push({
        message_id: entry.messageId,
        role: entry.role,
        text: entry.text,
        sources: entry.sources || [],
        tool: entry.tool || null,
        state: entry.state,
        note: entry.note || null,
        retry: Boolean(entry.retry),
      });
      store.set("turns", turns.slice(-LOCAL_HISTORY_LIMIT));
    }

    /* ---------- sending */

    async submit() {
      const text = this.input.value.trim();
      if (!text || this.pending || this.sending) return;
      this.clearNotice();
      this.sending = true;
      this.sendButton.disabled = true;
      this.input.value = "";
      this.fitInput();
      try {
        await this.send(text);
      } catch (error) {
        // Nothing was queued: give the text back so the user can send it again.
        this.input.value = text;
        this.fitInput();
        this.showNotice(describeRequestError(error));
        if (error instanceof ApiError && error.status === 404) this.newConversation(false);
      } finally {
        this.sending = false;
        this.sendButton.disabled = false;
      }
    }

    async send(text) {
      const sessionId = store.get("session_id");
      // The page the question was asked on helps support; its query and fragment may hold
      // personal data or tokens, so they are left out.
      const page = `${location.origin}${location.pathname}`.slice(0, 500);
      const body = { message: text, metadata: { page } };
      if (sessionId) body.session_id = sessionId;
      const accepted = await postJson("/chat", body);
      store.set("session_id", accepted.session_id);
      const question = this.entry("user", accepted.message_id);
      question.text = text;
      this.paint(question);
      this.remember(question);
      this.follow({
        message_id: accepted.message_id,
        session_id: accepted.session_id,
        question: text,
        attempt: null,
        seq: -1,
        text: "",
        last_event_id: null,
      });
    }

    askAgain(entry) {
      const question = this.messages.get(`user:${entry.messageId}`);
      if (!question || this.pending) return;
      this.input.value = question.text;
      this.submit();
    }

    /* ---------- streaming an answer */

    /** Stream the answer described by `pending` (fresh, or restored after a reload). */
    follow(pending) {
      const answer = this.entry("assistant", pending.message_id);
      answer.text = pending.text || "";
      answer.sources = [];
      answer.note = null;
      answer.retry = false;
      answer.state = answer.text ? "streaming" : "waiting";
      this.paint(answer);
      this.pending = { ...pending, answer, stopping: false, controller: null };
      store.set("pending", pending);
      this.setBusy(true);
      this.log.setAttribute("aria-busy", "true");
      this.run(this.pending);
    }

    async run(pending) {
      let failures = 0;
      while (this.pending === pending) {
        const controller = new AbortController();
        pending.controller = controller;
        let stall = 0;
        const armWatchdog = () => {
          clearTimeout(stall);
          stall = setTimeout(() => controller.abort(), STREAM_STALL_MS);
        };
        try {
          armWatchdog();
          const response = await request(
            apiUrl("/stream", {
              session_id: pending.session_id,
              message_id: pending.message_id,
              last_event_id: pending.last_event_id,
            }),
            {
              headers: { Accept: "text/event-stream" },
              cache: "no-store",
              signal: controller.signal,
            },
          );
          // Connected: the quiet "reconnecting" line goes away.
          if (!pending.stopping) this.setStatus("");
          const parser = new SseParser((name, payload, id) => {
            failures = 0; // the backoff restarts only once events flow again
            if (!pending.stopping && this.status.textContent) this.setStatus("");
            this.onStreamEvent(pending, name, payload, id);
          });
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            armWatchdog();
            parser.push(value);
            if (this.pending !== pending) {
              controller.abort();
              break;
            }
          }
        } catch (error) {
          if (this.pending !== pending) break;
          const retriable = [408, 425, 429].includes(error.status) || error.status >= 500;
          if (error instanceof ApiError && !retriable) {
            // The stream cannot be had at all (unknown session, signed out): stop trying.
            const lost = error.status === 404;
            const note = lost ? ERROR_TEXT.lost : describeRequestError(error);
            this.finish(pending, "error", { note, retry: lost });
            break;
          }
        } finally {
          clearTimeout(stall);
        }
        if (this.pending !== pending) break;
        // The connection ended before the answer did: reconnect quietly, with backoff.
        failures += 1;
        this.setStatus(navigator.onLine === false ? OFFLINE_STATUS : "Reconnecting…");
        await this.backoff(failures);
      }
    }

    backoff(failures) {
      const base = BACKOFF_MS[Math.min(failures - 1, BACKOFF_MS.length - 1)];
      const delay = base / 2 + Math.random() * (base / 2);
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          window.removeEventListener("online", done);
          resolve();
        };
        const timer = setTimeout(done, delay);
        window.addEventListener("online", done); // the network is back: try at once
      });
    }

    onStreamEvent(pending, name, payload, id) {
      if (this.pending !== pending) return;
      let event;
      try {
        event = JSON.parse(payload);
      } catch {
        return;
      }
      if (!event || (event.message_id && event.message_id !== pending.message_id)) return;
      const answer = pending.answer;
      if (name === "start") {
        if (event.attempt !== pending.attempt) {
          // Another attempt: text of the one we followed (kept across a reload) must go.
          if (pending.attempt && pending.text && !pending.stopping) {
            answer.text = "";
            answer.state = "waiting";
            this.repaintSoon(answer);
          }
          if (pending.attempt) pending.text = "";
          pending.attempt = event.attempt;
          pending.seq = -1;
        }
      } else if (name === "token") {
        if (!pending.stopping) {
          if (pending.attempt && event.attempt !== pending.attempt) {
            // A new attempt without a start we saw: its text replaces the old one.
            pending.text = "";
            pending.seq = -1;
          }
          pending.attempt = event.attempt;
          if (typeof event.seq !== "number" || event.seq > pending.seq) {
            pending.seq = typeof event.seq === "number" ? event.seq : pending.seq;
            pending.text += String(event.delta || "");
            answer.text = pending.text;
            answer.state = "streaming";
            this.repaintSoon(answer);
          }
        }
      } else if (name === "reset") {
        // A new attempt, or chunks this stream missed: the partial text shown so far is
        // discarded, never doubled (the answer then comes whole with its `done`).
        pending.text = "";
        pending.seq = -1;
        pending.attempt = null;
        if (!pending.stopping) {
          answer.text = "";
          answer.state = "waiting";
          this.repaintSoon(answer);
        }
      } else if (name === "done") {
        answer.text = String(event.text ?? pending.text);
        answer.sources = Array.isArray(event.sources) ? event.sources : [];
        answer.tool = typeof event.tool === "string" ? event.tool : null;
        this.finish(pending, "done", {});
        return;
      } else if (name === "error") {
        this.finishWithError(pending, event);
        return;
      }
      if (id) pending.last_event_id = id;
      store.set("pending", this.persistable(pending));
    }

    persistable(pending) {
      const { message_id, session_id, question, attempt, seq, text, last_event_id } = pending;
      return { message_id, session_id, question, attempt, seq, text, last_event_id };
    }

    finishWithError(pending, event) {
      const reason = event.reason || (event.code === "timeout" ? "timeout" : "failed");
      if (reason === "cancelled") {
        this.finish(pending, "cancelled", { note: "Stopped." });
      } else if (reason === "timeout") {
        this.finish(pending, "error", { note: ERROR_TEXT.timeout, retry: true });
      } else if (reason === "unavailable") {
        this.finish(pending, "error", { note: ERROR_TEXT.unavailable, retry: true });
      } else {
        this.finish(pending, "error", { note: ERROR_TEXT.failed, retry: true });
      }
    }

    /** End the answer: final state, note, storage, buttons. Runs once per answer. */
    finish(pending, state, { note = null, retry = false }) {
      if (this.pending !== pending) return;
      this.pending = null;
      clearTimeout(pending.stopTimer);
      if (pending.controller) pending.controller.abort();
      const answer = pending.answer;
      if (answer.frame) cancelAnimationFrame(answer.frame);
      answer.frame = 0;
      answer.state = state;
      answer.note = note;
      answer.retry = retry;
      this.paint(answer);
      this.remember(answer);
      store.set("pending", null);
      this.setStatus("");
      this.setBusy(false);
      this.log.setAttribute("aria-busy", "false");
    }

    /** Stop button: ask the server to cancel, freeze the text, and wait for its answer. */
    async stop() {
      const pending = this.pending;
      if (!pending || pending.stopping) return;
      pending.stopping = true;
      pending.answer.text = pending.text;
      this.stopButton.disabled = true;
      this.setStatus("Stopping…");
      this.input.focus();
      // If the server never confirms (old responder, lost connection), stop locally.
      pending.stopTimer = setTimeout(
        () => this.finish(pending, "stopped", { note: "Stopped." }),
        STOP_WAIT_MS,
      );
      try {
        await postJson(`/chat/${encodeURIComponent(pending.message_id)}/cancel`, {
          session_id: pending.session_id,
        });
      } catch (error) {
        if (error instanceof ApiError && error.status === 409) return; // already finished
        this.finish(pending, "stopped", { note: "Stopped." });
      } finally {
        this.stopButton.disabled = false;
      }
    }

    /* ---------- sessions */

    newConversation(focus = true) {
      if (this.pending) {
        const pending = this.pending;
        this.pending = null;
        if (pending.controller) pending.controller.abort();
        clearTimeout(pending.stopTimer);
      }
      store.set("session_id", null);
      store.set("pending", null);
      store.set("turns", null);
      for (const entry of this.messages.values()) entry.el.remove();
      this.messages.clear();
      this.intro.hidden = false;
      this.setBusy(false);
      this.setStatus("");
      this.clearNotice();
      this.log.setAttribute("aria-busy", "false");
      if (focus && this.isOpen()) this.input.focus();
    }

    /** After a reload: history from the gateway, local turns it lacks, then the answer in flight. */
    async restore() {
      const sessionId = store.get("session_id");
      const pending = store.get("pending");
      const local = store.get("turns") || [];
      let turns = [];
      if (sessionId) {
        try {
          const response = await request(
            apiUrl(`/sessions/${encodeURIComponent(sessionId)}/messages`),
            { headers: { Accept: "application/json" }, cache: "no-store" },
          );
          const body = await response.json();
          turns = Array.isArray(body.messages) ? body.messages : [];
        } catch (error) {
          if (error instanceof ApiError && error.status === 404) {
            // Not ours any more (another user signed in) or forgotten: start afresh.
            this.newConversation(false);
            return;
          }
          turns = []; // history unavailable: show what this page remembers
        }
      }
      const seen = new Set(turns.map((t) => `${t.role}:${t.message_id}`));
      const localByKey = new Map(local.map((t) => [`${t.role}:${t.message_id}`, t]));
      const all = [...turns, ...local.filter((t) => !seen.has(`${t.role}:${t.message_id}`))];
      for (const turn of all) {
        if (!turn || !turn.message_id || (turn.role !== "user" && turn.role !== "assistant")) continue;
        const key = `${turn.role}:${turn.message_id}`;
        if (pending && turn.role === "assistant" && turn.message_id === pending.message_id) {
          continue; // streamed below so that it ends exactly once
        }
        const remembered = localByKey.get(key);
        const entry = this.entry(turn.role, turn.message_id);
        entry.text = String(turn.text || "");
        entry.sources = (remembered && remembered.sources) || [];
        entry.tool = (remembered && remembered.tool) || null;
        entry.state = (remembered && remembered.state) || "done";
        entry.note = (remembered && remembered.note) || null;
        entry.retry = Boolean(remembered && remembered.retry);
        this.paint(entry);
      }
      if (pending && pending.message_id && pending.session_id === sessionId) {
        const question = this.entry("user", pending.message_id);
        if (!question.text) {
          question.text = pending.question || "";
          this.paint(question);
        }
        this.follow(pending);
      }
    }
  }

  /* ------------------------------------------------------------------ start */

  let widget = null;
  const ready = new Promise((resolve) => {
    const start = () => {
      widget = new Widget();
      document.body.append(widget.host);
      const wasOpen = store.get("open") === true;
      widget.restore().finally(() => {
        if (wasOpen) widget.open();
        resolve(widget);
      });
    };
    if (document.body) start();
    else document.addEventListener("DOMContentLoaded", start, { once: true });
  });

  window.addEventListener("offline", () => {
    if (widget && widget.pending) widget.setStatus(OFFLINE_STATUS);
  });

  /** The page's handle on the widget (see docs/widget.md). */
  window.TidingsWidget = Object.freeze({
    version: "1",
    ready,
    open: () => ready.then((w) => w.open()),
    close: () => ready.then((w) => w.close()),
    /** Bearer token for GATEWAY_AUTH=jwt; pass null to forget it. */
    setToken(value) {
      token = value || null;
    },
    /** `async () => token`: called when no token is known and again after a 401. */
    setTokenProvider(provider) {
      tokenProvider = typeof provider === "function" ? provider : null;
      if (tokenProvider) token = null;
    },
    newConversation: () => ready.then((w) => w.newConversation()),
    /** Exposed for tests and for pages that render answers elsewhere: DOM nodes, never HTML. */
    renderMarkdown,
  });
})();
