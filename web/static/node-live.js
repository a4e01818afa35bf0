/* SAM node page: keeps /nodes/{id} current in place, without reloading.
   Loaded with `defer` by node.html while the node can still change. No
   inline script or handler (the CSP is default-src 'self'), no
   dependencies, no build step. Every string from the server or the
   vm-agent goes into the page as textContent, never as markup.

   Hooks (node.html renders them; web/tests/pages.rs checks them):
   - #node-head: data-live-node (GET: the NodeView JSON), data-live-events
     (the node's log over a WebSocket: every line so far, then each new
     one, as {"at": ms, "phase": "...", "detail": "..."|null}),
     data-live-logs (the vm-agent's log as Server-Sent Events),
     data-created-at (offsets on the timeline count from it) and
     data-rendered-at (the server's clock, to correct the browser's).
   - #node-timeline rows carry data-at and data-phase; new lines are
     deduplicated against them by (at, phase), then added in time order.
   - #node-status, #node-health, #node-deadline, #node-holder, #node-error,
     #node-destroy, #node-ip, #node-server-id, #node-agent-version,
     #node-ready, #node-heartbeat and #node-metrics-body are rewritten from
     the NodeView after each new log line (and every 20 s, for heartbeats
     and health, which log nothing).
   - Forms with data-node-action (release, stop) are sent here and update
     the page in place; the delete form is forms.js's (it leaves the page).
   - #agent-log: "Show agent log" opens the stream, "Stop" closes it; at
     most MAX_LOG_LINES lines are kept.

   The wording below (phase labels, deadline phrases, units) matches
   web/src/node.rs, so a live update reads like a fresh page. */
(function () {
  "use strict";

  var head = document.getElementById("node-head");
  if (!head || !head.getAttribute("data-live-node")) return;

  var nodeUrl = head.getAttribute("data-live-node");
  var eventsPath = head.getAttribute("data-live-events");
  var logsUrl = head.getAttribute("data-live-logs");
  var createdAt = Number(head.getAttribute("data-created-at")) || 0;
  var renderedAt = Number(head.getAttribute("data-rendered-at"));
  /* The server's clock minus the browser's: "in 4 min" is counted on the
     server's clock, like the page it updates. */
  var skew = renderedAt > 0 ? renderedAt - Date.now() : 0;

  var MAX_LOG_LINES = 500;
  var POLL_MS = 20000;
  var TICK_MS = 5000;
  var RETRY_MIN_MS = 1000;
  var RETRY_MAX_MS = 30000;

  var STATUSES = ["provisioning", "booting", "ready", "warm", "destroying", "destroyed", "error"];
  var HEALTHS = ["healthy", "stale", "unhealthy"];
  var LEVELS = ["trace", "debug", "info", "warn", "error"];
  /* Label and style of each phase; web/src/node.rs has the same table. */
  var PHASES = {
    requested: ["Requested", "phase-ok"],
    provider_retrying: ["Provider retry", "phase-warn"],
    provider_created: ["Server created", "phase-ok"],
    provider_failed: ["Provider failed", "phase-error"],
    agent_ready: ["Agent ready", "phase-ok"],
    claimed: ["Claimed", "phase-ok"],
    released: ["Released", "phase-neutral"],
    boot_deadline_passed: ["Boot deadline passed", "phase-error"],
    heartbeat_stale: ["Heartbeats stopped", "phase-error"],
    warm_timeout_passed: ["Warm timeout passed", "phase-neutral"],
    max_lifetime_passed: ["Maximum lifetime reached", "phase-warn"],
    destroy_requested: ["Delete requested", "phase-warn"],
    destroy_failed: ["Delete failed", "phase-warn"],
    destroyed: ["Destroyed", "phase-neutral"]
  };

  function $(id) {
    return document.getElementById(id);
  }

  function now() {
    return Date.now() + skew;
  }

  function has(list, value) {
    return list.indexOf(value) >= 0;
  }

  function isRunning(status) {
    return status === "ready" || status === "warm";
  }

  function statusClass(status) {
    return has(STATUSES, status) ? "status-" + status : "status-unknown";
  }

  function healthClass(health) {
    return has(HEALTHS, health) ? "health-" + health : "health-unknown";
  }

  /* ----- DOM helpers: text only ----- */

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function append(parent, children) {
    for (var i = 0; i < children.length; i++) {
      var child = children[i];
      parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return parent;
  }

  function timeEl(ms, text, className) {
    var t = el("time", className, text);
    t.dateTime = iso(ms);
    t.title = display(ms);
    return t;
  }

  function muted(text) {
    return el("span", "muted", text);
  }

  /* ----- Time, as web/src/time.rs writes it (always UTC) ----- */

  function pad(n, width) {
    var s = String(n);
    while (s.length < (width || 2)) s = "0" + s;
    return s;
  }

  /* 2026-03-01T10:00:00Z */
  function iso(ms) {
    var d = new Date(ms);
    if (isNaN(d.getTime())) return "";
    return d.toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  /* 2026-03-01 10:00 UTC */
  function display(ms) {
    var d = new Date(ms);
    if (isNaN(d.getTime())) return "";
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }

  /* 10:00:07 UTC */
  function clock(ms) {
    var d = new Date(ms);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }

  /* 12:30 UTC */
  function hourMinute(ms) {
    var d = new Date(ms);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }

  /* 10:00:07.123, for log lines */
  function preciseClock(ms) {
    var d = new Date(ms);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) +
      "." + pad(d.getUTCMilliseconds(), 3);
  }

  /* 45 s, 3 min 12 s, 2 h 5 min, 4 d 3 h */
  function duration(secs) {
    secs = Math.max(0, Math.floor(secs));
    if (secs < 60) return secs + " s";
    if (secs < 3600) return Math.floor(secs / 60) + " min " + (secs % 60) + " s";
    if (secs < 86400) return Math.floor(secs / 3600) + " h " + Math.floor((secs % 3600) / 60) + " min";
    return Math.floor(secs / 86400) + " d " + Math.floor((secs % 86400) / 3600) + " h";
  }

  /* +0.8 s, +3 min 12 s */
  function offset(deltaMs) {
    var sign = deltaMs < 0 ? "-" : "+";
    var ms = Math.abs(deltaMs);
    if (ms < 60000) {
      var tenths = Math.floor((ms + 50) / 100);
      return sign + Math.floor(tenths / 10) + "." + (tenths % 10) + " s";
    }
    return sign + duration(Math.floor(ms / 1000));
  }

  function units(secs) {
    if (secs < 120) return secs + " s";
    if (secs < 7200) return Math.floor(secs / 60) + " min";
    if (secs < 172800) return Math.floor(secs / 3600) + " h";
    return Math.floor(secs / 86400) + " d";
  }

  /* 12 s ago; a time ahead (clock skew) is 0 s ago. */
  function ago(thenMs) {
    return units(Math.floor(Math.max(0, now() - thenMs) / 1000)) + " ago";
  }

  /* 8 s, 4 min: seconds round up, so a moment still ahead never reads 0 s. */
  function inWords(leftMs) {
    return units(Math.floor((Math.max(0, leftMs) + 999) / 1000));
  }

  /* What deadline_at means for the status; node.rs deadline_phrase. */
  function deadlinePhrase(status, at, nowMs) {
    var left = at - nowMs;
    var due = left <= 0;
    switch (status) {
      case "provisioning":
      case "booting":
        return due ? "boot deadline passed" : "boot deadline in " + inWords(left);
      case "ready":
        return due ? "next check due now" : "next check in " + inWords(left);
      case "warm":
        return due
          ? "warm; next check due now (destroyed if not claimed)"
          : "warm until " + hourMinute(at) + " (destroyed if not claimed)";
      case "destroying":
        return due ? "next delete attempt due now" : "next delete attempt in " + inWords(left);
      case "error":
        return "its server is deleted next";
      default:
        return null;
    }
  }

  /* ----- Metrics, as node.rs MetricsView ----- */

  /* 512 B, 1.5 KiB, 3.8 GiB */
  function bytes(n) {
    var UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if (n < 1024) return n + " B";
    var unit = 1;
    var divisor = 1024;
    function tenthsIn(d) {
      return Math.floor((n * 10 + d / 2) / d);
    }
    while (unit + 1 < UNITS.length && tenthsIn(divisor) >= 10240) {
      unit++;
      divisor *= 1024;
    }
    var tenths = tenthsIn(divisor);
    return Math.floor(tenths / 10) + "." + (tenths % 10) + " " + UNITS[unit];
  }

  function usage(total, available) {
    total = Number(total) || 0;
    if (total <= 0) return null;
    var used = Math.max(0, total - (Number(available) || 0));
    return {
      used: bytes(used),
      total: bytes(total),
      percent: Math.min(100, Math.floor((used * 100 + total / 2) / total))
    };
  }

  function metricsNote(status) {
    return isRunning(status) || status === "provisioning" || status === "booting"
      ? "No metrics yet: the agent reports them with each heartbeat."
      : "No metrics: the node is not running.";
  }

  function fact(dl, label, children) {
    var dd = append(el("dd"), children);
    dl.appendChild(append(el("div"), [el("dt", null, label), dd]));
  }

  function usageChildren(u) {
    if (!u) return [muted("—")];
    var meter = document.createElement("meter");
    meter.min = 0;
    meter.max = 100;
    meter.low = 70;
    meter.high = 90;
    meter.optimum = 0;
    meter.value = u.percent;
    meter.setAttribute("aria-hidden", "true");
    var text = append(el("span"), [el("span", "metric", u.used), " of " + u.total + " ", muted("(" + u.percent + " %)")]);
    return [meter, text];
  }

  function renderMetrics(view) {
    var body = $("node-metrics-body");
    if (!body) return;
    clear(body);
    var m = view.metrics;
    if (!isRunning(view.status) || !m || typeof m !== "object") {
      body.appendChild(el("p", "muted", metricsNote(view.status)));
      return;
    }
    var fixed = function (x) {
      return (Number(x) || 0).toFixed(2);
    };
    var dl = el("dl", "facts metrics");
    fact(dl, "Load average", [
      append(el("span"), [el("span", "metric", fixed(m.load_avg_1m)), " · " + fixed(m.load_avg_5m) + " · " + fixed(m.load_avg_15m)]),
      " ",
      muted("(1, 5, 15 min)")
    ]);
    fact(dl, "Memory", usageChildren(usage((Number(m.memory_total_kib) || 0) * 1024, (Number(m.memory_available_kib) || 0) * 1024)));
    fact(dl, "Disk", usageChildren(usage(m.disk_total_bytes, m.disk_available_bytes)));
    fact(dl, "Uptime", [el("span", "metric", duration(Number(m.uptime_secs) || 0))]);
    body.appendChild(dl);
    if (typeof view.last_heartbeat_at === "number") {
      body.appendChild(append(el("p", "page-meta"), [
        "As of the last heartbeat, ",
        timeEl(view.last_heartbeat_at, ago(view.last_heartbeat_at), "live-ago"),
        "."
      ]));
    }
  }

  /* ----- The node's state, from a NodeView ----- */

  var current = null;

  function setText(id, children) {
    var node = $(id);
    if (!node) return;
    clear(node);
    append(node, children);
  }

  function codeOrDash(value) {
    return typeof value === "string" && value ? [el("code", null, value)] : [muted("—")];
  }

  function renderDeadline() {
    var p = $("node-deadline");
    if (!p || !current) return;
    // A warm node is described by its warm timeout (node.rs Deadline::of).
    var at =
      current.status === "warm" && typeof current.warm_until === "number"
        ? current.warm_until
        : current.deadline_at;
    var text = typeof at === "number" ? deadlinePhrase(current.status, at, now()) : null;
    if (!text) {
      p.hidden = true;
      p.removeAttribute("data-deadline-at");
      return;
    }
    setText("node-deadline", [timeEl(at, text)]);
    p.setAttribute("data-deadline-at", String(at));
    p.hidden = false;
  }

  function renderHeartbeat() {
    if (!current) return;
    var at = current.last_heartbeat_at;
    setText("node-heartbeat", typeof at === "number" ? [timeEl(at, ago(at))] : [muted("never")]);
    var agos = document.querySelectorAll("#node-metrics-body time.live-ago");
    for (var i = 0; i < agos.length; i++) agos[i].textContent = ago(at);
  }

  function show(node, visible) {
    if (node) node.hidden = !visible;
  }

  function renderActions(view) {
    var heldByUser = typeof view.claimed_by === "string" && view.claimed_by.indexOf("user:") === 0;
    var forms = {
      "release-node-form": view.status === "ready" && heldByUser,
      "stop-node-form": view.status !== "destroying" && view.status !== "destroyed",
      "delete-node-form": !(view.status === "destroyed" && view.removed_at != null)
    };
    var any = false;
    for (var id in forms) {
      var form = $(id);
      if (!form) continue;
      form.hidden = !forms[id];
      any = any || forms[id];
    }
    show($("node-actions"), any);
  }

  function applyNode(view) {
    if (!view || typeof view.status !== "string") return;
    current = view;
    var status = view.status;
    head.setAttribute("data-status", status);
    head.setAttribute("data-health", String(view.health || ""));

    var badge = $("node-status");
    if (badge) {
      badge.className = "badge " + statusClass(status);
      badge.textContent = status;
    }
    var health = $("node-health");
    if (health) {
      health.className = "health " + healthClass(view.health);
      health.textContent = String(view.health || "");
    }
    renderDeadline();

    var holder = view.claimed_by;
    setText("node-holder", typeof holder === "string" && holder
      ? [holder.indexOf("user:") === 0 ? "you" : holder]
      : [muted("nobody")]);

    var message = status === "error" && typeof view.error_message === "string" ? view.error_message : "";
    setText("node-error-message", [message]);
    show($("node-error"), !!message);

    setText("node-destroy-attempts", [String(Number(view.destroy_attempts) || 0)]);
    var destroyError = typeof view.destroy_error === "string" ? view.destroy_error : "";
    setText("node-destroy-error", [destroyError]);
    show($("node-destroy-error-line"), !!destroyError);
    show($("node-destroy"), status === "destroying");

    setText("node-ip", codeOrDash(view.ip_address));
    setText("node-server-id", codeOrDash(view.provider_server_id));
    setText("node-agent-version", codeOrDash(view.agent_version));
    setText("node-ready", typeof view.agent_ready_at === "number"
      ? [timeEl(view.agent_ready_at, offset(view.agent_ready_at - createdAt)), " ", muted("after creation")]
      : [muted("not yet")]);
    renderHeartbeat();
    renderMetrics(view);
    renderActions(view);
    setLogAvailable(isRunning(status));
    if (status === "destroyed") finish();
  }

  /* Reads the node again, at most one request at a time; calls that
     arrive meanwhile are folded into one more read. */
  var refreshTimer = 0;
  var refreshing = false;
  var refreshAgain = false;

  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = window.setTimeout(function () {
      refreshTimer = 0;
      refresh();
    }, 250);
  }

  function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    fetch(nodeUrl, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { accept: "application/json" }
    })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(applyNode, function () {})
      .then(function () {
        refreshing = false;
        if (refreshAgain) {
          refreshAgain = false;
          refreshSoon();
        }
      });
  }

  /* ----- The timeline, over the events WebSocket ----- */

  var timeline = $("node-timeline");
  var seen = {};
  if (timeline) {
    var rows = timeline.querySelectorAll("li[data-phase]");
    for (var r = 0; r < rows.length; r++) {
      seen[rows[r].getAttribute("data-at") + "|" + rows[r].getAttribute("data-phase")] = true;
    }
  }

  /* Adds one log line unless it is already shown; true when added. */
  function addLine(line) {
    if (!timeline || !line || typeof line.phase !== "string" || typeof line.at !== "number") return false;
    var key = line.at + "|" + line.phase;
    if (seen[key]) return false;
    seen[key] = true;
    var known = Object.prototype.hasOwnProperty.call(PHASES, line.phase) ? PHASES[line.phase] : null;
    var item = el("li", "timeline-item " + (known ? known[1] : "phase-unknown"));
    item.setAttribute("data-phase", line.phase);
    item.setAttribute("data-at", String(line.at));
    item.setAttribute("data-live", "true");
    var when = append(el("span", "timeline-when"), [
      el("span", "timeline-offset", offset(line.at - createdAt)),
      " ",
      timeEl(line.at, clock(line.at))
    ]);
    item.appendChild(append(el("div", "timeline-head"), [
      el("span", "timeline-label", known ? known[0] : line.phase),
      " ",
      el("code", "timeline-code", line.phase),
      " ",
      when
    ]));
    if (typeof line.detail === "string" && line.detail) {
      item.appendChild(el("p", "timeline-detail", line.detail));
    }
    /* In time order: after the last row that is not later. */
    var before = null;
    for (var n = timeline.lastElementChild; n; n = n.previousElementSibling) {
      if (Number(n.getAttribute("data-at")) <= line.at) break;
      before = n;
    }
    timeline.insertBefore(item, before);
    timeline.hidden = false;
    show($("timeline-empty"), false);
    show($("boot-log-unavailable"), false);
    return true;
  }

  var socket = null;
  var retryTimer = 0;
  var retryMs = RETRY_MIN_MS;
  var connectedBefore = false;
  var finished = false;

  function setLiveState(state) {
    head.setAttribute("data-live-state", state);
    var label = $("node-live-state");
    if (!label) return;
    var text = { open: "· live", connecting: "· connecting…", reconnecting: "· reconnecting…" }[state];
    label.textContent = text || "";
    label.hidden = !text;
  }

  function connect() {
    retryTimer = 0;
    if (finished || socket || !eventsPath || typeof WebSocket !== "function") return;
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var ws;
    try {
      ws = new WebSocket(scheme + "//" + window.location.host + eventsPath);
    } catch (_) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    var openedAt = 0;
    setLiveState(connectedBefore ? "reconnecting" : "connecting");
    ws.onopen = function () {
      openedAt = Date.now();
      setLiveState("open");
      /* Whatever changed while we were away logged a line, but a missed
         status change is worth one read either way. */
      if (connectedBefore) refreshSoon();
      connectedBefore = true;
    };
    ws.onmessage = function (event) {
      var line;
      try {
        line = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (addLine(line)) refreshSoon();
    };
    ws.onclose = function () {
      if (socket === ws) socket = null;
      /* A connection that held for a while starts the backoff over. */
      if (openedAt && Date.now() - openedAt > 10000) retryMs = RETRY_MIN_MS;
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (finished || retryTimer) return;
    setLiveState("reconnecting");
    var delay = retryMs + Math.floor(Math.random() * 250);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    retryTimer = window.setTimeout(connect, delay);
  }

  /* The node is destroyed: nothing changes any more. */
  function finish() {
    if (finished) return;
    finished = true;
    if (retryTimer) window.clearTimeout(retryTimer);
    retryTimer = 0;
    if (socket) {
      var ws = socket;
      socket = null;
      ws.onclose = null;
      ws.close();
    }
    window.clearInterval(pollTimer);
    setLiveState("done");
  }

  /* ----- The vm-agent's log, over Server-Sent Events ----- */

  var logPanel = $("agent-log");
  var logStart = $("agent-log-start");
  var logStop = $("agent-log-stop");
  var logList = $("agent-log-lines");
  var logState = $("agent-log-state");
  var source = null;
  var logWanted = false;
  var logRetryTimer = 0;
  var logRetryMs = 2000;
  var lastSeq = 0;

  function setLogState(text) {
    if (logState) logState.textContent = text;
  }

  function appendLogItem(item) {
    var atBottom = logList.scrollTop + logList.clientHeight >= logList.scrollHeight - 8;
    logList.appendChild(item);
    while (logList.childElementCount > MAX_LOG_LINES) logList.removeChild(logList.firstElementChild);
    if (atBottom) logList.scrollTop = logList.scrollHeight;
  }

  function appendLogLine(line) {
    if (!line || typeof line !== "object") return;
    var seq = Number(line.seq);
    if (seq > 0) {
      if (seq <= lastSeq) return;
      lastSeq = seq;
    }
    var level = String(line.level || "").toLowerCase();
    var item = el("li", "log-line log-" + (has(LEVELS, level) ? level : "other"));
    if (seq > 0) item.setAttribute("data-seq", String(seq));
    var at = Number(line.at);
    var parts = [el("span", "log-level", String(line.level || "")), " "];
    if (at > 0) parts.push(timeEl(at, preciseClock(at), "log-time"), " ");
    parts.push(el("span", "log-target", String(line.target || "")), " ", el("span", "log-message", String(line.message || "")));
    appendLogItem(append(item, parts));
  }

  function appendLogGap(data) {
    var missed = data && Number(data.missed) > 0 ? Number(data.missed) : 0;
    appendLogItem(el("li", "log-line log-gap", missed + (missed === 1 ? " line was" : " lines were") + " dropped here."));
  }

  function closeSource() {
    if (logRetryTimer) window.clearTimeout(logRetryTimer);
    logRetryTimer = 0;
    if (source) {
      source.close();
      source = null;
    }
  }

  function stopLog(message) {
    logWanted = false;
    closeSource();
    if (logStart) logStart.hidden = false;
    if (logStop) logStop.hidden = true;
    setLogState(message);
  }

  function openLog() {
    closeSource();
    if (!logWanted || typeof EventSource !== "function") return;
    var url = logsUrl + (lastSeq > 0 ? "?since=" + lastSeq : "");
    var es = new EventSource(url);
    source = es;
    es.addEventListener("open", function () {
      logRetryMs = 2000;
      setLogState("Streaming live.");
    });
    es.addEventListener("log", function (event) {
      try {
        appendLogLine(JSON.parse(event.data));
      } catch (_) {
        /* A line that is not JSON is skipped. */
      }
    });
    es.addEventListener("gap", function (event) {
      var data = null;
      try {
        data = JSON.parse(event.data);
      } catch (_) {
        data = null;
      }
      appendLogGap(data);
    });
    es.onerror = function () {
      if (source !== es) return;
      /* EventSource would reconnect on its own and get the buffer again;
         reconnect ourselves instead, from the last line shown. */
      es.close();
      source = null;
      if (!logWanted) return;
      if (current && !isRunning(current.status)) {
        stopLog("The agent log is available while the node is ready or warm.");
        return;
      }
      setLogState("The log stream was interrupted; reconnecting…");
      logRetryTimer = window.setTimeout(openLog, logRetryMs);
      logRetryMs = Math.min(logRetryMs * 2, RETRY_MAX_MS);
      /* A 409 means the node stopped running; find out. */
      refreshSoon();
    };
  }

  function startLog() {
    logWanted = true;
    logRetryMs = 2000;
    if (logList) logList.hidden = false;
    if (logStart) logStart.hidden = true;
    if (logStop) logStop.hidden = false;
    setLogState("Connecting…");
    openLog();
  }

  function setLogAvailable(available) {
    show(logPanel, available);
    if (!available && logWanted) stopLog("The agent log is available while the node is ready or warm.");
  }

  if (logStart && logList && logsUrl) {
    logStart.disabled = false;
    logStart.addEventListener("click", startLog);
  }
  if (logStop) {
    logStop.addEventListener("click", function () {
      stopLog("Stopped. The lines so far stay above.");
    });
  }

  /* ----- Release and stop, updated in place ----- */

  function formError(form, message) {
    var box = form.querySelector("[role=alert]");
    if (!box) return;
    box.textContent = message;
    box.hidden = !message;
  }

  function setBusy(form, busy) {
    form.setAttribute("aria-busy", busy ? "true" : "false");
    var buttons = form.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = busy;
  }

  function describe(data, response) {
    var err = data && typeof data.error === "object" && data.error ? data.error : data;
    if (err && typeof err.code === "string") return err.code + ": " + (err.message || "");
    return "http_" + response.status + ": " + (response.statusText || "the request failed");
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-node-action")) return;
    event.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) return;
    formError(form, "");
    setBusy(form, true);
    fetch(form.getAttribute("action"), {
      method: "POST",
      credentials: "same-origin",
      headers: { accept: "application/json", "content-type": "application/json" },
      body: "{}"
    })
      .then(function (response) {
        return response.text().then(function (text) {
          var data = null;
          try {
            data = text ? JSON.parse(text) : null;
          } catch (_) {
            data = null;
          }
          if (!response.ok) throw new Error(describe(data, response));
          applyNode(data);
          refreshSoon();
        });
      })
      .then(
        function () {
          setBusy(form, false);
        },
        function (err) {
          var message = err && err.message ? err.message : String(err);
          if (err instanceof TypeError) message = "network_error: " + message;
          formError(form, message);
          setBusy(form, false);
        }
      );
  });

  /* ----- Start ----- */

  var pollTimer = window.setInterval(function () {
    if (!document.hidden) refreshSoon();
  }, POLL_MS);
  window.setInterval(function () {
    renderDeadline();
    renderHeartbeat();
  }, TICK_MS);
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || finished) return;
    refreshSoon();
    if (!socket && !retryTimer) connect();
  });
  refresh();
  connect();
})();
