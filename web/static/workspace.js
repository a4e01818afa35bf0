/* SAM workspace page: /workspaces/{id}. Loaded with `defer` by
   workspace.html (after vendor/xterm.js and vendor/addon-fit.js while the
   workspace runs). No inline script or handler (the CSP allows scripts from
   this origin only), no framework, no build step. Every string from the
   server or the workspace goes into the page as textContent or an
   attribute value, never as markup.

   Hooks (workspace.html renders them; web/tests/pages.rs checks them):
   - #workspace-head: data-status (as rendered), data-api-url (GET: the
     WorkspaceView JSON), and while running data-ticket-url (POST: a
     single-use terminal ticket), data-port-ticket-url (POST {port}: a
     single-use port ticket and the URL that redeems it), data-ports-url
     (POST {ports_public}: the public-ports switch) and data-workspace-url
     (the workspace's own origin W, `ws-<id>.<domain>`).
   - While the status is creating, stopping or deleting, the status is
     re-read every few seconds and the page reloads when it changes.
   - While running: the tabs #tab-terminals, #tab-files, #tab-changes,
     #tab-ports (links to their panels without JavaScript; ARIA tabs with arrow keys,
     Home and End here; the selected one is kept in the URL's fragment).

   Talking to the workspace (docs/workspaces.md, "Browser access"):
   - A ticket from the app (same origin, like forms.js: the browser's
     Origin header is the CSRF check) is traded at W/session?token= for the
     vm-agent's HttpOnly workspace cookie; every call to W is a fetch with
     credentials: "include". A call answered 401 gets a fresh ticket and is
     tried once more.
   - Terminals: GET W/terminals lists them ({terminals: [{id, created_at,
     alive, exit_status?, ...}]}); with none, POST W/terminals {cols, rows}
     opens one. Each is attached over a WebSocket at
     W/terminals/{tid}/ws?token=<fresh ticket> (the vm-agent accepts a
     ticket on the upgrade itself, so a socket never depends on the cookie
     reaching it): binary frames both ways, the server's scrollback first,
     and text frames {"type":"resize","cols":C,"rows":R} from here. A socket
     that closes for any reason but the shell's exit (1000 "exited …") or
     the terminal's end (1000 "terminal closed") is reconnected with
     backoff; reconnecting replays the scrollback. The terminal shown is
     remembered per workspace in sessionStorage, so a reload reattaches to
     it. #terminal-state ([data-testid=terminal-state]) reads "connected"
     while the socket is open.
   - Files: GET W/files?path=<dir> ("" is the checkout's root), W/files/
     content?path= (text, or binary: true), images shown from
     W/files/raw?path=, downloads from W/files/download?path=.
   - Changes: GET W/git/status and W/git/diff[?path=], shown as a diff with
     added and removed lines marked.
   - Ports: GET W/ports ({ports: [{port, address}]}) as one row per port
     (#ports-list > [data-port=N]), re-read every 5 s while the tab is
     shown and the page visible. A row's Open (button.port-open[data-port=N])
     asks the app for a port ticket (POST data-port-ticket-url {port} →
     {ticket, url, expires_at}) and sends a tab, opened at once (about:blank,
     cut from this page with opener = null) so a popup blocker allows it,
     to `url`; when no tab could be opened (a popup blocker, the tab closed
     meanwhile) the row offers `url` as a link (target _blank, rel
     noopener).
     Each row shows the port's own origin (W with `--<port>` after its
     `ws-<id>` label). #ports-public is the public-ports switch (POST
     data-ports-url {ports_public}; the reply is the workspace view).

   xterm.js's DOM renderer writes <style> elements and style attributes,
   which the page's CSP (style-src 'self') makes the browser refuse.
   `routeStylesThroughCssom` hands both to the CSSOM instead (constructed
   style sheets and element.style), which the CSP does not restrict: only
   scripts from this origin can style the page that way, markup never, and
   the console stays free of CSP violations. */
(function () {
  "use strict";

  var head = document.getElementById("workspace-head");
  if (!head) return;

  var CHANGING = ["creating", "stopping", "deleting"];
  var STATUS_POLL_MS = 3000;
  var RETRY_MIN_MS = 1000;
  var RETRY_MAX_MS = 30000;
  var MAX_DIFF_LINES = 20000;
  var IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "gif", "webp", "avif", "bmp", "ico"];

  var apiUrl = head.getAttribute("data-api-url");
  var renderedStatus = head.getAttribute("data-status") || "";
  var workspaceId = head.getAttribute("data-workspace-id") || "";

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function show(node, on) {
    if (node) node.hidden = !on;
  }

  function setText(id, text) {
    var node = $(id);
    if (node) node.textContent = text || "";
  }

  function showError(id, error) {
    var node = $(id);
    if (!node) return;
    var message = !error ? "" : error.message ? error.message : String(error);
    node.textContent = message;
    node.hidden = !message;
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      window.setTimeout(resolve, ms);
    });
  }

  /* An Error from a failed response: "code: message" from the API's error
     body ({code, message}), else the HTTP status. */
  async function responseError(response) {
    var data = null;
    try {
      var text = await response.text();
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    var body = data && typeof data.error === "object" && data.error ? data.error : data;
    var error;
    if (body && typeof body.code === "string") {
      error = new Error(body.code + ": " + (body.message || ""));
      error.code = body.code;
    } else {
      error = new Error("http_" + response.status + ": " + (response.statusText || "the request failed"));
      error.code = "http_" + response.status;
    }
    error.status = response.status;
    return error;
  }

  function networkError(error) {
    if (error instanceof TypeError) {
      var wrapped = new Error("network_error: the workspace could not be reached (" + error.message + ")");
      wrapped.code = "network_error";
      return wrapped;
    }
    return error;
  }

  /* ---- following the status ------------------------------------------- */

  async function currentStatus() {
    var response = await fetch(apiUrl, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { accept: "application/json" }
    });
    if (!response.ok) throw await responseError(response);
    var view = await response.json();
    return view && typeof view.status === "string" ? view.status : "";
  }

  /* Reloads the page once the workspace's status is no longer the one it
     was rendered with. */
  async function followStatus() {
    var state = $("workspace-live-state");
    var delay = STATUS_POLL_MS;
    for (;;) {
      await sleep(delay);
      try {
        var status = await currentStatus();
        if (status && status !== renderedStatus) {
          window.location.reload();
          return;
        }
        delay = STATUS_POLL_MS;
        if (state) state.textContent = "";
      } catch (error) {
        delay = Math.min(delay * 2, RETRY_MAX_MS);
        if (state) state.textContent = "status check failed, retrying";
      }
    }
  }

  /* Something suggests the workspace stopped running (a terminal ended by
     the workspace, a 409 from it): reload if it did. */
  var checkingStatus = false;
  async function recheckStatus() {
    if (checkingStatus) return;
    checkingStatus = true;
    try {
      var status = await currentStatus();
      if (status && status !== renderedStatus) window.location.reload();
    } catch (_) {
      /* The next event checks again. */
    } finally {
      checkingStatus = false;
    }
  }

  if (CHANGING.indexOf(renderedStatus) >= 0) followStatus();

  var origin = head.getAttribute("data-workspace-url");
  var ticketUrl = head.getAttribute("data-ticket-url");
  if (renderedStatus !== "running" || !origin || !ticketUrl) return;
  var socketOrigin = origin.replace(/^http/, "ws");
  var portTicketUrl = head.getAttribute("data-port-ticket-url");
  var portsUrl = head.getAttribute("data-ports-url");

  /* ---- the workspace session ------------------------------------------- */

  async function newTicket() {
    var response = await fetch(ticketUrl, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { accept: "application/json" }
    });
    if (!response.ok) {
      var error = await responseError(response);
      if (error.status === 409) recheckStatus();
      throw error;
    }
    var data = await response.json();
    if (!data || typeof data.ticket !== "string") throw new Error("invalid_ticket: the ticket reply has no ticket");
    return data.ticket;
  }

  var session = null;

  async function openSession() {
    var ticket = await newTicket();
    var response;
    try {
      response = await fetch(origin + "/session?token=" + encodeURIComponent(ticket), {
        credentials: "include",
        cache: "no-store"
      });
    } catch (error) {
      throw networkError(error);
    }
    if (!response.ok) throw await responseError(response);
  }

  /* The workspace cookie, once per page (again after a 401). */
  function ensureSession() {
    if (!session) {
      var pending = openSession();
      session = pending;
      pending.catch(function () {
        if (session === pending) session = null;
      });
    }
    return session;
  }

  /* fetch(W + path) with the workspace cookie; a 401 renews it once. */
  async function workspaceFetch(path, init) {
    for (var attempt = 0; ; attempt++) {
      var used = ensureSession();
      await used;
      var options = Object.assign({ credentials: "include", cache: "no-store" }, init || {});
      var response;
      try {
        response = await fetch(origin + path, options);
      } catch (error) {
        throw networkError(error);
      }
      if (response.status === 401 && attempt === 0) {
        if (session === used) session = null;
        continue;
      }
      return response;
    }
  }

  /* The JSON reply of W + path (null for 204); an Error for anything else. */
  async function workspaceJson(path, init) {
    var response = await workspaceFetch(path, init);
    if (!response.ok) {
      var error = await responseError(response);
      if (error.status === 409 || error.status === 404) recheckStatus();
      throw error;
    }
    if (response.status === 204) return null;
    return response.json();
  }

  /* POST url with a JSON body to the app's own API (same origin, like
     forms.js and newTicket: the browser's Origin header is the CSRF
     check); the reply's JSON, or an Error "code: message". */
  async function appJson(url, body) {
    var response;
    try {
      response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        cache: "no-store",
        headers: { accept: "application/json", "content-type": "application/json" },
        body: JSON.stringify(body)
      });
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
      var wrapped = new Error("network_error: the app could not be reached (" + error.message + ")");
      wrapped.code = "network_error";
      throw wrapped;
    }
    if (!response.ok) {
      var failure = await responseError(response);
      if (failure.status === 409) recheckStatus();
      throw failure;
    }
    return response.json();
  }

  function withPath(route, path) {
    return route + "?path=" + encodeURIComponent(path);
  }

  /* ---- tabs ------------------------------------------------------------- */

  var tabList = $("workspace-tablist");
  var tabs = tabList ? Array.prototype.slice.call(tabList.querySelectorAll(".tab")) : [];
  var shownOnce = {};

  function panelOf(tab) {
    return $((tab.getAttribute("href") || "").replace(/^#/, ""));
  }

  function selectTab(tab, focus) {
    tabs.forEach(function (other) {
      var on = other === tab;
      other.setAttribute("aria-selected", on ? "true" : "false");
      other.tabIndex = on ? 0 : -1;
      show(panelOf(other), on);
    });
    if (focus) tab.focus();
    var panel = panelOf(tab);
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", "#" + panel.id);
    }
    onPanelShown(panel.id);
  }

  function setupTabs() {
    if (!tabList || tabs.length === 0) return;
    tabList.setAttribute("role", "tablist");
    tabs.forEach(function (tab, index) {
      var panel = panelOf(tab);
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-controls", panel.id);
      panel.setAttribute("role", "tabpanel");
      tab.addEventListener("click", function (event) {
        event.preventDefault();
        selectTab(tab, false);
      });
      tab.addEventListener("keydown", function (event) {
        var next = null;
        if (event.key === "ArrowRight") next = tabs[(index + 1) % tabs.length];
        else if (event.key === "ArrowLeft") next = tabs[(index - 1 + tabs.length) % tabs.length];
        else if (event.key === "Home") next = tabs[0];
        else if (event.key === "End") next = tabs[tabs.length - 1];
        else if (event.key === " " || event.key === "Spacebar") next = tab;
        if (!next) return;
        event.preventDefault();
        selectTab(next, true);
      });
    });
    $("workspace-tabs").classList.add("tabs-ready");
    var wanted = window.location.hash.replace(/^#/, "");
    var initial = tabs.filter(function (tab) {
      return panelOf(tab).id === wanted;
    })[0];
    selectTab(initial || tabs[0], false);
  }

  function onPanelShown(id) {
    var first = !shownOnce[id];
    shownOnce[id] = true;
    shownPanel = id;
    if (id !== "panel-ports") stopPortsTimer();
    if (id === "panel-terminals") {
      if (first) startTerminals();
      else fitSoon();
    } else if (id === "panel-files") {
      loadDirectory(first ? "" : currentDir);
    } else if (id === "panel-changes") {
      loadChanges();
    } else if (id === "panel-ports") {
      loadPorts(!first);
    }
  }

  /* ---- terminals -------------------------------------------------------- */

  var terminalHost = $("terminal");
  var terminalList = $("terminal-list");
  var newTerminalButton = $("terminal-new");
  var encoder = new TextEncoder();
  var storageKey = "sam.workspace." + workspaceId + ".terminal";

  var term = null;
  var fitAddon = null;
  var terminals = [];
  var activeId = null;
  var socket = null;
  var reconnectTimer = null;
  var reconnectDelay = RETRY_MIN_MS;

  function setTerminalState(state, text) {
    var node = $("terminal-state");
    if (!node) return;
    node.setAttribute("data-state", state);
    node.textContent = text || state;
  }

  /* See the header. xterm.js adds its <style> elements with appendChild
     (or insertBefore) and fills them through textContent or innerText.
     Here such an element is never put into the document, which would make
     the browser refuse it under the CSP; its text goes into a constructed
     style sheet that the document adopts while the element is "inserted",
     and drops when the element is removed. A style attribute set by a
     script becomes element.style.cssText. Markup in the page is never
     styled either way, and only this page's own scripts run here. */
  function routeStylesThroughCssom() {
    if (
      typeof CSSStyleSheet !== "function" ||
      !("replaceSync" in CSSStyleSheet.prototype) ||
      !("adoptedStyleSheets" in document)
    ) {
      return;
    }
    var sheets = new WeakMap();
    var textOf = Object.getOwnPropertyDescriptor(Node.prototype, "textContent").get;
    var sheetOf = function (element) {
      var sheet = sheets.get(element);
      if (!sheet) {
        sheet = new CSSStyleSheet();
        sheets.set(element, sheet);
      }
      return sheet;
    };
    var adopt = function (sheet, on) {
      var list = document.adoptedStyleSheets.filter(function (other) {
        return other !== sheet;
      });
      if (on) list.push(sheet);
      document.adoptedStyleSheets = list;
    };
    [
      [Node.prototype, "textContent"],
      [HTMLElement.prototype, "innerText"]
    ].forEach(function (pair) {
      var original = Object.getOwnPropertyDescriptor(pair[0], pair[1]);
      if (!original || !original.set) return;
      Object.defineProperty(HTMLStyleElement.prototype, pair[1], {
        configurable: true,
        enumerable: original.enumerable,
        get: original.get,
        set: function (value) {
          original.set.call(this, value);
          if (!this.isConnected) sheetOf(this).replaceSync(textOf.call(this));
        }
      });
    });
    ["appendChild", "insertBefore"].forEach(function (method) {
      var original = Node.prototype[method];
      Node.prototype[method] = function (node) {
        if (node instanceof HTMLStyleElement && !node.isConnected) {
          var sheet = sheetOf(node);
          sheet.replaceSync(textOf.call(node));
          adopt(sheet, true);
          return node;
        }
        return original.apply(this, arguments);
      };
    });
    var remove = Element.prototype.remove;
    HTMLStyleElement.prototype.remove = function () {
      var sheet = sheets.get(this);
      if (sheet) adopt(sheet, false);
      return remove.call(this);
    };
    var setAttribute = Element.prototype.setAttribute;
    Element.prototype.setAttribute = function (name, value) {
      if (String(name).toLowerCase() === "style" && this.style) {
        this.style.cssText = String(value);
        return;
      }
      return setAttribute.call(this, name, value);
    };
  }

  function createTerminalView() {
    if (typeof window.Terminal !== "function" || !window.FitAddon) {
      setTerminalState("error", "terminal library missing");
      return false;
    }
    routeStylesThroughCssom();
    var narrow = window.matchMedia && window.matchMedia("(max-width: 640px)").matches;
    term = new window.Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace',
      fontSize: narrow ? 12 : 14,
      scrollback: 5000,
      allowProposedApi: false
    });
    fitAddon = new window.FitAddon.FitAddon();
    term.loadAddon(fitAddon);
    term.open(terminalHost);
    term.onData(function (data) {
      sendBytes(encoder.encode(data));
    });
    term.onBinary(function (data) {
      var bytes = new Uint8Array(data.length);
      for (var i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
      sendBytes(bytes);
    });
    term.onResize(function () {
      sendResize();
    });
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(fitSoon).observe(terminalHost);
    }
    window.addEventListener("resize", fitSoon);
    fit();
    return true;
  }

  var fitPending = false;
  function fitSoon() {
    if (fitPending) return;
    fitPending = true;
    window.requestAnimationFrame(function () {
      fitPending = false;
      fit();
    });
  }

  /* Fits the terminal to its box; nothing while the box is hidden. */
  function fit() {
    if (!term || !fitAddon || terminalHost.offsetParent === null) return;
    var size = fitAddon.proposeDimensions();
    if (!size || !(size.cols > 0) || !(size.rows > 0)) return;
    if (size.cols !== term.cols || size.rows !== term.rows) fitAddon.fit();
  }

  function size() {
    fit();
    var cols = term ? term.cols : 80;
    var rows = term ? term.rows : 24;
    return {
      cols: Math.max(1, Math.min(1000, cols | 0)),
      rows: Math.max(1, Math.min(1000, rows | 0))
    };
  }

  function sendBytes(bytes) {
    if (socket && socket.readyState === WebSocket.OPEN && bytes.length > 0) socket.send(bytes);
  }

  function sendResize() {
    if (!socket || socket.readyState !== WebSocket.OPEN || !term) return;
    var s = size();
    socket.send(JSON.stringify({ type: "resize", cols: s.cols, rows: s.rows }));
  }

  function rememberActive(id) {
    try {
      if (id) window.sessionStorage.setItem(storageKey, id);
      else window.sessionStorage.removeItem(storageKey);
    } catch (_) {
      /* Storage may be unavailable; reattaching then picks the first. */
    }
  }

  function remembered() {
    try {
      return window.sessionStorage.getItem(storageKey);
    } catch (_) {
      return null;
    }
  }

  function terminalLabel(index) {
    return "Terminal " + (index + 1);
  }

  function renderTerminalList() {
    clear(terminalList);
    terminals.forEach(function (t, index) {
      var item = el("li", "terminal-item");
      var label = terminalLabel(index) + (t.alive === false ? " (exited)" : "");
      var pick = el("button", "terminal-tab", label);
      pick.type = "button";
      pick.setAttribute("data-terminal-id", t.id);
      pick.setAttribute("aria-pressed", t.id === activeId ? "true" : "false");
      pick.addEventListener("click", function () {
        if (t.id !== activeId) attach(t.id);
        if (term) term.focus();
      });
      var close = el("button", "terminal-close", "\u00d7");
      close.type = "button";
      close.setAttribute("aria-label", "Close " + terminalLabel(index));
      close.title = "Close " + terminalLabel(index);
      close.addEventListener("click", function () {
        closeTerminal(t.id, terminalLabel(index));
      });
      item.appendChild(pick);
      item.appendChild(close);
      terminalList.appendChild(item);
    });
    show(terminalList, terminals.length > 0);
  }

  async function refreshTerminals() {
    var data = await workspaceJson("/terminals");
    terminals = data && Array.isArray(data.terminals) ? data.terminals : [];
    return terminals;
  }

  async function createTerminal() {
    var s = size();
    var created = await workspaceJson("/terminals", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ cols: s.cols, rows: s.rows })
    });
    await refreshTerminals();
    if (created && created.id && !terminals.some(function (t) { return t.id === created.id; })) {
      terminals.push({ id: created.id, created_at: created.created_at, alive: true });
    }
    return created ? created.id : null;
  }

  async function startTerminals() {
    if (!term && !createTerminalView()) return;
    newTerminalButton.disabled = false;
    newTerminalButton.addEventListener("click", newTerminal);
    await connectTerminals();
  }

  /* Lists the terminals and attaches to the remembered one if its shell
     still runs, else to the first one that runs; with none running, opens
     one (exited ones stay listed, with their output). */
  async function connectTerminals() {
    setTerminalState("connecting", "connecting");
    showError("terminal-error", null);
    try {
      await refreshTerminals();
      var running = function (t) {
        return t.alive !== false;
      };
      if (!terminals.some(running)) await createTerminal();
      var wanted = remembered();
      var pick =
        terminals.filter(function (t) { return t.id === wanted && running(t); })[0] ||
        terminals.filter(running)[0] ||
        terminals[0];
      activeId = pick ? pick.id : null;
      renderTerminalList();
      if (activeId) attach(activeId);
      else setTerminalState("idle", "no terminal");
    } catch (error) {
      setTerminalState("error", "not connected");
      showError("terminal-error", error);
      scheduleReconnect(connectTerminals);
    }
  }

  async function newTerminal() {
    showError("terminal-error", null);
    newTerminalButton.disabled = true;
    try {
      var id = await createTerminal();
      if (id) attach(id);
      renderTerminalList();
      if (term) term.focus();
    } catch (error) {
      showError("terminal-error", error);
    } finally {
      newTerminalButton.disabled = false;
    }
  }

  async function closeTerminal(id, label) {
    if (!window.confirm("Close " + label + "? Its shell and everything running in it end.")) return;
    showError("terminal-error", null);
    try {
      await workspaceJson("/terminals/" + encodeURIComponent(id), { method: "DELETE" });
    } catch (error) {
      if (error.status !== 404) {
        showError("terminal-error", error);
        return;
      }
    }
    try {
      await refreshTerminals();
    } catch (error) {
      terminals = terminals.filter(function (t) { return t.id !== id; });
    }
    if (id === activeId) {
      detach();
      var next = terminals.filter(function (t) { return t.alive !== false; })[0] || terminals[0];
      activeId = next ? next.id : null;
      rememberActive(activeId);
      if (activeId) attach(activeId);
      else {
        term.reset();
        setTerminalState("idle", "no terminal");
      }
    }
    renderTerminalList();
  }

  function scheduleReconnect(action) {
    if (reconnectTimer) window.clearTimeout(reconnectTimer);
    var delay = reconnectDelay;
    reconnectDelay = Math.min(reconnectDelay * 2, RETRY_MAX_MS);
    setTerminalState("reconnecting", "reconnecting in " + Math.round(delay / 1000) + " s");
    reconnectTimer = window.setTimeout(function () {
      reconnectTimer = null;
      action();
    }, delay);
  }

  function detach() {
    if (reconnectTimer) {
      window.clearTimeout(reconnectTimer);
      reconnectTimer = null;
    }
    var old = socket;
    socket = null;
    if (old && old.readyState <= WebSocket.OPEN) old.close(1000, "detached");
  }

  function markExited(id, reason) {
    terminals.forEach(function (t) {
      if (t.id === id) t.alive = false;
    });
    renderTerminalList();
    setTerminalState("exited", reason || "exited");
  }

  /* Shows terminal `id`: the scrollback, then live output. */
  async function attach(id) {
    detach();
    activeId = id;
    rememberActive(id);
    renderTerminalList();
    term.reset();
    setTerminalState("connecting", "connecting");
    var ticket;
    try {
      ticket = await newTicket();
    } catch (error) {
      if (activeId !== id) return;
      showError("terminal-error", error);
      scheduleReconnect(reconnect);
      return;
    }
    if (activeId !== id || socket) return;
    var url = socketOrigin + "/terminals/" + encodeURIComponent(id) + "/ws?token=" + encodeURIComponent(ticket);
    var ws;
    try {
      ws = new WebSocket(url);
    } catch (error) {
      showError("terminal-error", error);
      scheduleReconnect(reconnect);
      return;
    }
    ws.binaryType = "arraybuffer";
    socket = ws;
    ws.addEventListener("open", function () {
      if (socket !== ws) return;
      reconnectDelay = RETRY_MIN_MS;
      showError("terminal-error", null);
      setTerminalState("connected", "connected");
      sendResize();
    });
    ws.addEventListener("message", function (event) {
      if (socket !== ws) return;
      if (event.data instanceof ArrayBuffer) term.write(new Uint8Array(event.data));
    });
    ws.addEventListener("close", function (event) {
      if (socket !== ws) return;
      socket = null;
      var reason = event.reason || "";
      if (event.code === 1000 && /^exited\b/.test(reason)) {
        markExited(id, reason);
      } else if (event.code === 1000 && reason === "terminal closed") {
        setTerminalState("closed", "terminal closed");
        recheckStatus();
        refreshTerminals().then(renderTerminalList, function () {});
      } else {
        if (event.code === 1001) recheckStatus();
        scheduleReconnect(reconnect);
      }
    });
  }

  /* After a lost connection: the terminal may be gone, or the workspace. */
  async function reconnect() {
    try {
      await refreshTerminals();
    } catch (error) {
      showError("terminal-error", error);
      scheduleReconnect(reconnect);
      return;
    }
    var still = terminals.some(function (t) { return t.id === activeId; });
    renderTerminalList();
    if (still) attach(activeId);
    else connectTerminals();
  }

  /* ---- files ------------------------------------------------------------ */

  var currentDir = "";
  var filesLoading = 0;

  function formatSize(bytes) {
    var n = Number(bytes) || 0;
    if (n < 1024) return n + " B";
    var units = ["KiB", "MiB", "GiB", "TiB"];
    var unit = -1;
    do {
      n /= 1024;
      unit++;
    } while (n >= 1024 && unit < units.length - 1);
    return n.toFixed(1) + " " + units[unit];
  }

  function formatTime(ms) {
    var n = Number(ms);
    if (!isFinite(n) || n <= 0) return "";
    return new Date(n).toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC");
  }

  function joinPath(dir, name) {
    return dir ? dir + "/" + name : name;
  }

  function extension(name) {
    var dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
  }

  function renderBreadcrumbs(path) {
    var nav = $("files-path");
    clear(nav);
    var list = el("ol", "breadcrumb-list");
    var parts = path ? path.split("/") : [];
    var crumbs = [{ label: "checkout", path: "" }];
    parts.forEach(function (part, index) {
      crumbs.push({ label: part, path: parts.slice(0, index + 1).join("/") });
    });
    crumbs.forEach(function (crumb, index) {
      var item = el("li");
      if (index === crumbs.length - 1) {
        var here = el("span", "breadcrumb-current", crumb.label);
        here.setAttribute("aria-current", "location");
        item.appendChild(here);
      } else {
        var link = el("button", "link-button", crumb.label);
        link.type = "button";
        link.addEventListener("click", function () {
          loadDirectory(crumb.path);
        });
        item.appendChild(link);
      }
      list.appendChild(item);
    });
    nav.appendChild(list);
  }

  function entryRow(entry) {
    var row = el("tr");
    row.setAttribute("data-kind", entry.kind);
    var nameCell = el("th");
    nameCell.scope = "row";
    nameCell.setAttribute("data-label", "Name");
    var isDir = entry.kind === "dir";
    var button = el("button", "link-button file-entry " + (isDir ? "file-dir" : "file-file"), entry.name + (isDir ? "/" : ""));
    button.type = "button";
    button.setAttribute("data-path", entry.path);
    button.addEventListener("click", function () {
      if (isDir) loadDirectory(entry.path);
      else openFile(entry.path, entry.name, entry.kind);
    });
    nameCell.appendChild(button);
    if (entry.kind === "symlink") nameCell.appendChild(el("span", "muted file-kind", " (link)"));
    row.appendChild(nameCell);
    var sizeCell = el("td", null, isDir ? "" : formatSize(entry.size));
    sizeCell.setAttribute("data-label", "Size");
    row.appendChild(sizeCell);
    var modified = el("td", null, formatTime(entry.modified));
    modified.setAttribute("data-label", "Modified");
    row.appendChild(modified);
    return row;
  }

  async function loadDirectory(path) {
    var ticket = ++filesLoading;
    var refresh = $("files-refresh");
    refresh.disabled = true;
    showError("files-error", null);
    setText("files-state", "Loading…");
    try {
      var listing = await workspaceJson(withPath("/files", path));
      if (ticket !== filesLoading) return;
      currentDir = listing && typeof listing.path === "string" ? listing.path : path;
      renderBreadcrumbs(currentDir);
      var entries = listing && Array.isArray(listing.entries) ? listing.entries.slice() : [];
      entries.sort(function (a, b) {
        var dirA = a.kind === "dir" ? 0 : 1;
        var dirB = b.kind === "dir" ? 0 : 1;
        return dirA - dirB || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
      });
      var body = $("files-entries");
      clear(body);
      var fragment = document.createDocumentFragment();
      if (currentDir) {
        var parent = currentDir.split("/").slice(0, -1).join("/");
        fragment.appendChild(entryRow({ name: "..", path: parent, kind: "dir", size: 0, modified: 0 }));
      }
      entries.forEach(function (entry) {
        fragment.appendChild(
          entryRow({
            name: String(entry.name),
            path: joinPath(currentDir, String(entry.name)),
            kind: String(entry.kind),
            size: entry.size,
            modified: entry.modified
          })
        );
      });
      body.appendChild(fragment);
      show($("files-table"), true);
      var count = entries.length + (entries.length === 1 ? " entry" : " entries");
      setText("files-state", listing && listing.truncated ? count + " (the listing is cut short)" : count);
    } catch (error) {
      if (ticket !== filesLoading) return;
      setText("files-state", "");
      showError("files-error", error);
    } finally {
      if (ticket === filesLoading) refresh.disabled = false;
    }
  }

  var fileLoading = 0;

  async function openFile(path, name, kind) {
    var ticket = ++fileLoading;
    var viewer = $("file-viewer");
    var image = $("file-image");
    var text = $("file-text");
    var note = $("file-viewer-note");
    var title = $("file-viewer-name");
    show(viewer, true);
    title.textContent = path;
    title.tabIndex = -1;
    $("file-download").href = origin + withPath("/files/download", path);
    $("file-download").setAttribute("download", name);
    show(image, false);
    image.removeAttribute("src");
    show(text, false);
    text.textContent = "";
    note.textContent = "Loading…";
    show(note, true);
    showError("files-error", null);
    title.focus();
    if (IMAGE_EXTENSIONS.indexOf(extension(name)) >= 0) {
      /* The session cookie must exist before the browser asks for it. */
      try {
        await ensureSession();
      } catch (error) {
        note.textContent = error.message;
        return;
      }
      if (ticket !== fileLoading) return;
      image.alt = name;
      image.onload = function () {
        if (ticket === fileLoading) show(note, false);
      };
      image.onerror = function () {
        if (ticket === fileLoading) note.textContent = "The image could not be loaded.";
      };
      image.src = origin + withPath("/files/raw", path);
      show(image, true);
      return;
    }
    try {
      var content = await workspaceJson(withPath("/files/content", path));
      if (ticket !== fileLoading) return;
      if (!content || content.binary || typeof content.text !== "string") {
        note.textContent = "Binary file, " + formatSize(content && content.size) + ". Use Download to get it.";
        return;
      }
      text.textContent = content.text;
      show(text, true);
      if (content.truncated) {
        note.textContent = "Showing the first " + formatSize(content.text.length) + " of " + formatSize(content.size) + ".";
      } else {
        show(note, false);
      }
    } catch (error) {
      if (ticket !== fileLoading) return;
      /* A link to a directory is listed instead. */
      if (kind === "symlink" && (error.code === "not_a_file" || error.code === "is_a_directory")) {
        show(viewer, false);
        loadDirectory(path);
        return;
      }
      note.textContent = error.message;
    }
  }

  function setupFiles() {
    $("files-refresh").addEventListener("click", function () {
      loadDirectory(currentDir);
    });
    $("file-close").addEventListener("click", function () {
      fileLoading++;
      show($("file-viewer"), false);
      $("file-image").removeAttribute("src");
      $("file-text").textContent = "";
    });
  }

  /* ---- changes ---------------------------------------------------------- */

  var CHANGE_WORDS = {
    M: "modified",
    T: "type changed",
    A: "added",
    D: "deleted",
    R: "renamed",
    C: "copied",
    U: "conflict",
    "?": "untracked"
  };
  var changesLoading = 0;

  function changeWord(file) {
    var index = String(file.index || ".");
    var worktree = String(file.worktree || ".");
    if (index === "U" || worktree === "U") return "conflict";
    var code = worktree !== "." ? worktree : index;
    var word = CHANGE_WORDS[code] || code;
    if (worktree === "." && index !== ".") word += " (staged)";
    return word;
  }

  function changeClass(file) {
    var code = String(file.worktree !== "." ? file.worktree : file.index);
    if (code === "?" || code === "A") return "change-added";
    if (code === "D") return "change-deleted";
    if (code === "U") return "change-conflict";
    return "change-modified";
  }

  function summary(status) {
    var parts = [];
    if (status.branch) parts.push("On branch " + status.branch);
    else if (status.head) parts.push("HEAD detached at " + String(status.head).slice(0, 12));
    if (status.upstream) {
      var track = "tracking " + status.upstream;
      if (status.ahead || status.behind) track += " (" + (status.ahead || 0) + " ahead, " + (status.behind || 0) + " behind)";
      parts.push(track);
    }
    var files = Array.isArray(status.files) ? status.files.length : 0;
    parts.push(files === 0 ? "no changes" : files + (files === 1 ? " changed file" : " changed files"));
    return parts.join(" · ");
  }

  async function loadChanges() {
    var ticket = ++changesLoading;
    $("changes-refresh").disabled = true;
    showError("changes-error", null);
    setText("changes-state", "Loading…");
    try {
      var status = await workspaceJson("/git/status");
      if (ticket !== changesLoading) return;
      status = status || {};
      setText("changes-summary", summary(status));
      var list = $("changes-files");
      clear(list);
      var files = Array.isArray(status.files) ? status.files : [];
      files.forEach(function (file) {
        var item = el("li", "change-item");
        var button = el("button", "link-button change-file");
        button.type = "button";
        button.setAttribute("data-path", String(file.path));
        var badge = el("span", "change-badge " + changeClass(file), changeWord(file));
        button.appendChild(badge);
        var name = file.orig_path ? file.orig_path + " \u2192 " + file.path : file.path;
        button.appendChild(el("span", "change-path", name));
        button.addEventListener("click", function () {
          loadDiff(String(file.path));
        });
        item.appendChild(button);
        list.appendChild(item);
      });
      show(list, files.length > 0);
      $("changes-all").disabled = files.length === 0;
      setText("changes-state", status.truncated ? "The list is cut short." : "");
      if (files.length === 0) show($("diff-view"), false);
    } catch (error) {
      if (ticket !== changesLoading) return;
      setText("changes-state", "");
      showError("changes-error", error);
    } finally {
      if (ticket === changesLoading) $("changes-refresh").disabled = false;
    }
  }

  /* The unified diff as lines, each marked by what it is. */
  function renderDiff(target, diff) {
    clear(target);
    var lines = diff.split("\n");
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    var fragment = document.createDocumentFragment();
    var inHunk = false;
    var shown = Math.min(lines.length, MAX_DIFF_LINES);
    for (var i = 0; i < shown; i++) {
      var line = lines[i];
      var kind;
      if (line.indexOf("diff --git ") === 0) {
        inHunk = false;
        kind = "diff-file";
      } else if (line.indexOf("@@") === 0) {
        inHunk = true;
        kind = "diff-hunk";
      } else if (!inHunk) {
        kind = "diff-meta";
      } else if (line.charAt(0) === "+") {
        kind = "diff-add";
      } else if (line.charAt(0) === "-") {
        kind = "diff-del";
      } else if (line.charAt(0) === "\\") {
        kind = "diff-meta";
      } else {
        kind = "diff-ctx";
      }
      var span = el("span", "diff-line " + kind, line === "" ? " " : line);
      fragment.appendChild(span);
    }
    target.appendChild(fragment);
    return lines.length - shown;
  }

  var diffLoading = 0;

  async function loadDiff(path) {
    var ticket = ++diffLoading;
    var view = $("diff-view");
    var note = $("diff-note");
    var target = $("diff");
    show(view, true);
    var title = $("diff-title");
    title.textContent = path ? path : "All changes";
    title.tabIndex = -1;
    clear(target);
    note.textContent = "Loading…";
    show(note, true);
    title.focus();
    try {
      var data = await workspaceJson(path ? withPath("/git/diff", path) : "/git/diff");
      if (ticket !== diffLoading) return;
      var diff = data && typeof data.diff === "string" ? data.diff : "";
      var left = renderDiff(target, diff);
      var notes = [];
      if (!diff) notes.push("No differences.");
      if (data && data.truncated) notes.push("The diff is cut short.");
      if (left > 0) notes.push(left + " more lines are not shown.");
      note.textContent = notes.join(" ");
      show(note, notes.length > 0);
    } catch (error) {
      if (ticket !== diffLoading) return;
      note.textContent = error.message;
    }
  }

  function setupChanges() {
    $("changes-refresh").addEventListener("click", loadChanges);
    $("changes-all").addEventListener("click", function () {
      loadDiff("");
    });
  }

  /* ---- ports ------------------------------------------------------------ */

  var PORTS_POLL_MS = 5000;
  var shownPanel = null;
  var portsLoading = 0;
  var portsTimer = null;
  /* The rows on the page by port: kept across refreshes, so a focused
     button or a row's note survives them. */
  var portRows = {};
  var switchingPublic = false;

  /* The port's own origin: W with `--<port>` after its `ws-<id>` label. */
  function portOrigin(port) {
    var match = /^(https?:\/\/ws-[A-Za-z0-9]+)([.:].*)?$/.exec(origin);
    return match ? match[1] + "--" + port + (match[2] || "") + "/" : "";
  }

  /* One entry per port, sorted, each with its addresses. */
  function groupPorts(entries) {
    var byPort = {};
    var order = [];
    (Array.isArray(entries) ? entries : []).forEach(function (entry) {
      var port = Number(entry && entry.port);
      if (!(port >= 1 && port <= 65535) || Math.floor(port) !== port) return;
      if (!byPort[port]) {
        byPort[port] = [];
        order.push(port);
      }
      var address = entry.address == null ? "" : String(entry.address);
      if (address && byPort[port].indexOf(address) < 0) byPort[port].push(address);
    });
    order.sort(function (a, b) {
      return a - b;
    });
    return order.map(function (port) {
      return { port: port, addresses: byPort[port] };
    });
  }

  function portRow(port) {
    var row = el("li", "port-row");
    row.setAttribute("data-port", String(port));
    var top = el("div", "port-head");
    top.appendChild(el("span", "port-number", String(port)));
    var addresses = el("span", "port-addresses");
    top.appendChild(addresses);
    row.appendChild(top);
    var publicUrl = portOrigin(port);
    if (publicUrl) row.appendChild(el("code", "port-url", publicUrl));
    var open = el("button", "button-small port-open", "Open");
    open.type = "button";
    open.setAttribute("data-port", String(port));
    open.setAttribute("aria-label", "Open port " + port + " in a new tab");
    var note = el("p", "port-note");
    note.hidden = true;
    open.addEventListener("click", function () {
      openPort(port, open, note);
    });
    row.appendChild(open);
    row.appendChild(note);
    return { row: row, addresses: addresses };
  }

  function renderPorts(groups) {
    var list = $("ports-list");
    var seen = {};
    groups.forEach(function (group, index) {
      seen[group.port] = true;
      var entry = portRows[group.port];
      if (!entry) {
        entry = portRow(group.port);
        portRows[group.port] = entry;
      }
      entry.addresses.textContent = group.addresses.length ? "on " + group.addresses.join(", ") : "";
      var here = list.children[index] || null;
      if (here !== entry.row) list.insertBefore(entry.row, here);
    });
    Object.keys(portRows).forEach(function (port) {
      if (seen[port]) return;
      var row = portRows[port].row;
      if (row.parentNode) row.parentNode.removeChild(row);
      delete portRows[port];
    });
    show(list, groups.length > 0);
    show($("ports-empty"), groups.length === 0);
  }

  function portsShown() {
    return shownPanel === "panel-ports" && document.visibilityState !== "hidden";
  }

  function stopPortsTimer() {
    if (portsTimer) window.clearTimeout(portsTimer);
    portsTimer = null;
  }

  function schedulePorts() {
    stopPortsTimer();
    if (!portsShown()) return;
    portsTimer = window.setTimeout(function () {
      portsTimer = null;
      if (portsShown()) loadPorts(true);
    }, PORTS_POLL_MS);
  }

  /* Reads the listening ports; `quiet` (the automatic refresh) neither
     says "Loading…" nor disables Refresh. */
  async function loadPorts(quiet) {
    var ticket = ++portsLoading;
    stopPortsTimer();
    var refresh = $("ports-refresh");
    if (!quiet) {
      refresh.disabled = true;
      showError("ports-error", null);
      setText("ports-state", "Loading…");
    }
    try {
      var data = await workspaceJson("/ports");
      if (ticket !== portsLoading) return;
      renderPorts(groupPorts(data && data.ports));
      showError("ports-error", null);
      setText("ports-state", "");
    } catch (error) {
      if (ticket !== portsLoading) return;
      setText("ports-state", "");
      showError("ports-error", error);
    } finally {
      if (ticket === portsLoading) {
        refresh.disabled = false;
        schedulePorts();
      }
    }
  }

  function showPortNote(note, error) {
    clear(note);
    note.className = error ? "port-note form-error" : "port-note";
    if (error) note.textContent = error.message;
    show(note, !!error);
  }

  /* A tab could not be opened: the row offers the ticket's URL as a link
     (its text without the ticket). */
  function showPortLink(note, port, url) {
    showPortNote(note, null);
    note.appendChild(document.createTextNode("No new tab opened. Open port " + port + " here (for a minute): "));
    var link = el("a", "port-link", url.split("?")[0]);
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    note.appendChild(link);
    show(note, true);
  }

  async function openPort(port, button, note) {
    showPortNote(note, null);
    button.disabled = true;
    /* Opened now, while the click still counts as the user's, so a popup
       blocker lets it through, and cut from this page at once; sent to
       the port when the ticket is in. */
    var win = null;
    try {
      win = window.open("about:blank", "_blank");
    } catch (_) {
      win = null;
    }
    if (win) {
      try {
        win.opener = null;
      } catch (_) {
        /* A tab that could reach back into this page is not used. */
        win.close();
        win = null;
      }
    }
    try {
      var data = await appJson(portTicketUrl, { port: port });
      var url = data && typeof data.url === "string" ? data.url : "";
      if (!/^https?:\/\//i.test(url)) throw new Error("invalid_ticket: the ticket reply has no usable URL");
      var sent = false;
      if (win && !win.closed) {
        try {
          win.location.replace(url);
          sent = true;
        } catch (_) {
          sent = false;
        }
      }
      if (!sent) {
        if (win && !win.closed) win.close();
        showPortLink(note, port, url);
      }
    } catch (error) {
      if (win && !win.closed) win.close();
      showPortNote(note, error);
    } finally {
      button.disabled = false;
    }
  }

  function applyPortsPublic(on) {
    $("ports-public").checked = on;
    setText("workspace-ports-public", on ? "public" : "private");
  }

  async function setPortsPublic(box) {
    if (switchingPublic) {
      /* One change at a time: this one is undone. */
      box.checked = !box.checked;
      return;
    }
    var wanted = box.checked;
    switchingPublic = true;
    box.setAttribute("aria-busy", "true");
    showError("ports-public-error", null);
    try {
      var view = await appJson(portsUrl, { ports_public: wanted });
      applyPortsPublic(view && typeof view.ports_public === "boolean" ? view.ports_public : wanted);
    } catch (error) {
      box.checked = !wanted;
      showError("ports-public-error", error);
    } finally {
      switchingPublic = false;
      box.removeAttribute("aria-busy");
    }
  }

  function setupPorts() {
    $("ports-refresh").addEventListener("click", function () {
      loadPorts(false);
    });
    var box = $("ports-public");
    if (portsUrl) {
      box.disabled = false;
      box.addEventListener("change", function () {
        setPortsPublic(box);
      });
    }
    document.addEventListener("visibilitychange", function () {
      if (shownPanel !== "panel-ports") return;
      if (document.visibilityState === "hidden") stopPortsTimer();
      else loadPorts(true);
    });
  }

  /* ---- start ------------------------------------------------------------ */

  setupFiles();
  setupChanges();
  setupPorts();
  setupTabs();
})();
