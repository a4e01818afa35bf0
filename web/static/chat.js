/* SAM project chat (web/templates/chat.html; the view model is
   web/src/tasks.rs and the transcript rules web/src/transcript.rs).
   Loaded with `defer`; no inline script anywhere (the CSP is
   default-src 'self'). No dependencies, no build step. Data is only ever
   put into the page with textContent, never as markup.

   - #task-form: POST /api/projects/{id}/tasks {message, agent?, vm_size?};
     on 202 the page opens the new task's session.
   - #session-search filters the session list by title, client-side (a
     stop-gap: server-side full-text search is not there yet).
   - #chat: the selected session. The server rendered its transcript up to
     #chat-stream[data-after]; this script continues it over the WebSocket
     GET {api-base}/ws?after=<seq> (all prompts, then the messages after
     that sequence number, then each new one, live), applying the same rules
     as transcript.rs to the same markup: consecutive agent text is one
     bubble, tool call updates merge by toolCallId (content replaced), a plan
     replaces the current turn's plan, prompts appear where prompt_sent is
     and wait in #chat-pending until then.
   - The task (#task-status, #task-branch, #pr-link, #task-failure) is
     re-read from data-task-url every few seconds until it has ended, and
     at once when a turn ends. #task-cancel posts {task-url}/cancel.
   - Permission buttons post {api-base}/permissions/{request_id}
     {option_id}; #followup-form posts {api-base}/prompts {text}. */
(function () {
  "use strict";

  var ENDED = { completed: true, failed: true, cancelled: true };
  var TASK_STATUSES = [
    "queued", "acquiring_node", "creating_workspace", "starting_agent", "running",
    "finalizing", "completed", "failed", "cancelled"
  ];
  var SESSION_STATUSES = [
    "pending", "running", "waiting_for_input", "waiting_for_permission", "completed",
    "failed", "interrupted"
  ];
  var PLAN_STATUSES = ["pending", "in_progress", "completed"];
  /* Above this many line pairs a diff is all removed, then all added. */
  var DIFF_CELLS_MAX = 250000;
  var DIFF_CONTEXT = 3;

  function statusClass(known, status) {
    return known.indexOf(status) >= 0 ? "status-" + status : "status-unknown";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text);
    return node;
  }

  function str(value) {
    return typeof value === "string" ? value : "";
  }

  /* The first element under `root` matching `selector` whose `attr` is `value`. */
  function findBy(root, selector, attr, value) {
    var all = root.querySelectorAll(selector);
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute(attr) === value) return all[i];
    }
    return null;
  }

  function showError(box, message) {
    if (!box) return;
    box.textContent = message || "";
    box.hidden = !message;
  }

  function describe(data, status) {
    var err = data && typeof data.error === "object" && data.error ? data.error : data;
    if (err && typeof err.code === "string") return err.code + ": " + (err.message || "");
    return "http_" + status + ": the request failed";
  }

  /* fetch with JSON in and out; resolves {ok, status, data}. */
  function api(method, url, body) {
    var init = { method: method, credentials: "same-origin", headers: { accept: "application/json" } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try {
          data = text ? JSON.parse(text) : null;
        } catch (_) {
          data = null;
        }
        return { ok: response.ok, status: response.status, data: data };
      });
    });
  }

  function networkError(err) {
    return "network_error: " + (err && err.message ? err.message : String(err));
  }

  /* ----- New task ----- */

  var taskForm = document.getElementById("task-form");
  if (taskForm) {
    taskForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var error = document.getElementById("task-error");
      var button = document.getElementById("task-submit");
      var body = { message: taskForm.elements.namedItem("message").value };
      var agent = taskForm.elements.namedItem("agent").value;
      var size = taskForm.elements.namedItem("vm_size").value;
      if (agent) body.agent = agent;
      if (size) body.vm_size = size;
      showError(error, "");
      button.disabled = true;
      api("POST", taskForm.getAttribute("data-url"), body).then(
        function (r) {
          var task = r.data && r.data.task;
          if (!r.ok || !task || typeof task.session_id !== "string") {
            showError(error, describe(r.data, r.status));
            button.disabled = false;
            return;
          }
          window.location.assign(
            taskForm.getAttribute("data-chat-url") + "?session=" + encodeURIComponent(task.session_id)
          );
        },
        function (err) {
          showError(error, networkError(err));
          button.disabled = false;
        }
      );
    });
  }

  /* ----- Session search: by title, in the page, for now ----- */

  var search = document.getElementById("session-search");
  if (search) {
    search.addEventListener("input", function () {
      var query = search.value.trim().toLowerCase();
      var items = document.querySelectorAll("#session-list .session-item");
      var shown = 0;
      for (var i = 0; i < items.length; i++) {
        var title = (items[i].getAttribute("data-title") || "").toLowerCase();
        items[i].hidden = query !== "" && title.indexOf(query) < 0;
        if (!items[i].hidden) shown++;
      }
      var empty = document.getElementById("session-search-empty");
      if (empty) empty.hidden = shown > 0 || items.length === 0;
    });
  }

  var chat = document.getElementById("chat");
  var stream = document.getElementById("chat-stream");
  if (!chat || !stream) return;
  var pendingList = document.getElementById("chat-pending");
  var apiBase = chat.getAttribute("data-api-base");
  var taskUrl = chat.getAttribute("data-task-url");
  var liveState = document.getElementById("chat-live-state");
  var after = parseInt(stream.getAttribute("data-after"), 10) || 0;
  /* The prompts' texts by id, from the stream's prompt frames. */
  var prompts = {};
  /* The current turn's plan (a prompt starts a new turn). */
  var currentPlan = null;
  var plans = stream.querySelectorAll(".msg-plan");
  if (plans.length) {
    var lastPlan = plans[plans.length - 1];
    var n = lastPlan.nextElementSibling;
    while (n && !n.classList.contains("msg-user")) n = n.nextElementSibling;
    if (!n) currentPlan = lastPlan;
  }

  /* ----- The line diff (as transcript.rs's line_diff) ----- */

  function splitLines(text) {
    if (!text) return [];
    if (text.charAt(text.length - 1) === "\n") text = text.slice(0, -1);
    return text.split("\n");
  }

  function lineDiff(oldText, newText) {
    var a = splitLines(oldText);
    var b = splitLines(newText);
    var ops = [];
    var head = 0;
    while (head < a.length && head < b.length && a[head] === b[head]) head++;
    var tail = 0;
    while (tail < a.length - head && tail < b.length - head &&
           a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
    var am = a.slice(head, a.length - tail);
    var bm = b.slice(head, b.length - tail);
    var i, j;
    for (i = 0; i < head; i++) ops.push([" ", a[i]]);
    if (am.length * bm.length > DIFF_CELLS_MAX) {
      for (i = 0; i < am.length; i++) ops.push(["-", am[i]]);
      for (j = 0; j < bm.length; j++) ops.push(["+", bm[j]]);
    } else {
      var w = bm.length + 1;
      var lcs = new Uint32Array((am.length + 1) * w);
      for (i = am.length - 1; i >= 0; i--) {
        for (j = bm.length - 1; j >= 0; j--) {
          lcs[i * w + j] = am[i] === bm[j]
            ? lcs[(i + 1) * w + j + 1] + 1
            : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
        }
      }
      i = 0;
      j = 0;
      while (i < am.length || j < bm.length) {
        if (i < am.length && j < bm.length && am[i] === bm[j]) {
          ops.push([" ", am[i]]);
          i++;
          j++;
        } else if (i < am.length && (j === bm.length || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) {
          ops.push(["-", am[i]]);
          i++;
        } else {
          ops.push(["+", bm[j]]);
          j++;
        }
      }
    }
    for (i = a.length - tail; i < a.length; i++) ops.push([" ", a[i]]);
    return fold(ops);
  }

  function fold(ops) {
    var out = [];
    var i = 0;
    while (i < ops.length) {
      if (ops[i][0] !== " ") {
        out.push(ops[i]);
        i++;
        continue;
      }
      var start = i;
      while (i < ops.length && ops[i][0] === " ") i++;
      var before = start === 0 ? 0 : DIFF_CONTEXT;
      var afterKeep = i === ops.length ? 0 : DIFF_CONTEXT;
      var run = i - start;
      if (run > before + afterKeep + 1) {
        out = out.concat(ops.slice(start, start + before));
        out.push(["\u2026", (run - before - afterKeep) + " unchanged lines"]);
        out = out.concat(ops.slice(i - afterKeep, i));
      } else {
        out = out.concat(ops.slice(start, i));
      }
    }
    return out;
  }

  var DIFF_CLASS = { "+": "diff-add", "-": "diff-del", "\u2026": "diff-fold" };

  /* ----- Rendering (the markup of _chat_item.html) ----- */

  function blockText(block) {
    if (!block || typeof block !== "object") return "";
    var type = str(block.type);
    return type === "text" || type === "" ? str(block.text) : "[" + type + "]";
  }

  function textItem(className, text) {
    var li = el("li", "msg " + className);
    li.appendChild(el("p", "msg-text", text));
    return li;
  }

  /* Appends to the last item if it is of this kind, else starts one. */
  function appendChunk(kind, text) {
    var last = stream.lastElementChild;
    var same = last && last.classList.contains(kind) &&
      !(kind === "msg-user" && last.hasAttribute("data-prompt-id"));
    if (same) {
      var p = last.querySelector(".msg-text");
      p.textContent = p.textContent + text;
      return;
    }
    if (kind === "msg-thought") {
      var li = el("li", "msg msg-thought");
      var details = el("details");
      details.appendChild(el("summary", null, "Thinking"));
      details.appendChild(el("p", "msg-text", text));
      li.appendChild(details);
      stream.appendChild(li);
    } else {
      stream.appendChild(textItem(kind, text));
    }
  }

  function renderContent(c) {
    if (!c || typeof c !== "object") return null;
    var type = str(c.type);
    if (type === "diff") {
      var box = el("div", "tool-diff");
      var path = el("p", "diff-path");
      path.appendChild(el("code", null, str(c.path)));
      box.appendChild(path);
      var pre = el("pre", "diff");
      pre.tabIndex = 0;
      var lines = lineDiff(str(c.oldText), str(c.newText));
      for (var i = 0; i < lines.length; i++) {
        pre.appendChild(el("span", "diff-line " + (DIFF_CLASS[lines[i][0]] || "diff-ctx"), lines[i][0] + lines[i][1]));
      }
      box.appendChild(pre);
      return box;
    }
    var text;
    if (type === "content") text = blockText(c.content);
    else if (type === "terminal") text = "[terminal " + str(c.terminalId) + "]";
    else return null;
    var out = el("pre", "tool-output", text);
    out.tabIndex = 0;
    return out;
  }

  function toolCall(u) {
    var id = str(u.toolCallId);
    var li = findBy(stream, ".tool-call", "data-tool-call-id", id);
    if (!li) {
      li = el("li", "msg tool-call");
      li.setAttribute("data-tool-call-id", id);
      var head = el("div", "tool-head");
      head.appendChild(el("span", "tool-kind", ""));
      head.appendChild(document.createTextNode(" "));
      head.appendChild(el("span", "tool-title", ""));
      head.appendChild(document.createTextNode(" "));
      var status = el("span", "tool-status", "");
      status.setAttribute("data-status", "");
      head.appendChild(status);
      li.appendChild(head);
      li.appendChild(el("div", "tool-content"));
      stream.appendChild(li);
    }
    if (typeof u.title === "string") li.querySelector(".tool-title").textContent = u.title;
    if (typeof u.kind === "string") li.querySelector(".tool-kind").textContent = u.kind;
    if (typeof u.status === "string") {
      var badge = li.querySelector(".tool-status");
      badge.textContent = u.status;
      badge.setAttribute("data-status", u.status);
    }
    if (Array.isArray(u.content)) {
      var box = li.querySelector(".tool-content");
      while (box.firstChild) box.removeChild(box.firstChild);
      for (var i = 0; i < u.content.length; i++) {
        var part = renderContent(u.content[i]);
        if (part) box.appendChild(part);
      }
    }
  }

  function plan(u) {
    var entries = Array.isArray(u.entries) ? u.entries : [];
    if (!currentPlan || currentPlan.parentNode !== stream) {
      currentPlan = el("li", "msg msg-plan");
      currentPlan.appendChild(el("p", "msg-label", "Plan"));
      currentPlan.appendChild(el("ol", "plan-entries"));
      stream.appendChild(currentPlan);
    }
    var list = currentPlan.querySelector(".plan-entries");
    while (list.firstChild) list.removeChild(list.firstChild);
    for (var i = 0; i < entries.length; i++) {
      var status = str(entries[i] && entries[i].status);
      var cls = PLAN_STATUSES.indexOf(status) >= 0 ? "plan-" + status : "plan-unknown";
      var item = el("li", "plan-entry " + cls, str(entries[i] && entries[i].content));
      item.setAttribute("data-status", status);
      list.appendChild(item);
    }
  }

  function update(u) {
    if (!u || typeof u !== "object") return;
    switch (u.sessionUpdate) {
      case "agent_message_chunk": appendChunk("msg-agent", blockText(u.content)); break;
      case "agent_thought_chunk": appendChunk("msg-thought", blockText(u.content)); break;
      case "user_message_chunk": appendChunk("msg-user", blockText(u.content)); break;
      case "tool_call":
      case "tool_call_update": toolCall(u); break;
      case "plan": plan(u); break;
      default: break;
    }
  }

  function promptItem(id, text) {
    var li = textItem("msg-user", text);
    li.setAttribute("data-prompt-id", id);
    return li;
  }

  function onPrompt(frame) {
    var id = str(frame.prompt_id);
    prompts[id] = str(frame.text);
    var shown = findBy(stream, ".msg-user", "data-prompt-id", id);
    if (shown) {
      var p = shown.querySelector(".msg-text");
      if (!p.textContent) p.textContent = prompts[id];
      return;
    }
    if (!pendingList || findBy(pendingList, ".msg-user", "data-prompt-id", id)) return;
    var li = promptItem(id, prompts[id]);
    li.classList.add("msg-pending");
    pendingList.appendChild(li);
  }

  function promptSent(id) {
    currentPlan = null;
    if (findBy(stream, ".msg-user", "data-prompt-id", id)) return;
    var waiting = pendingList && findBy(pendingList, ".msg-user", "data-prompt-id", id);
    if (waiting) {
      waiting.classList.remove("msg-pending");
      stream.appendChild(waiting);
    } else {
      stream.appendChild(promptItem(id, prompts[id] || ""));
    }
  }

  function permissionRequested(p) {
    var id = str(p.request_id);
    if (findBy(stream, ".permission", "data-request-id", id)) return;
    var li = el("li", "msg permission");
    li.setAttribute("data-request-id", id);
    var label = el("p", "msg-label", "Permission requested");
    var title = str(p.tool_call && p.tool_call.title);
    if (title) {
      label.appendChild(document.createTextNode(": "));
      label.appendChild(el("span", "permission-title", title));
    }
    li.appendChild(label);
    var options = el("div", "permission-options");
    var list = Array.isArray(p.options) ? p.options : [];
    for (var i = 0; i < list.length; i++) {
      var o = list[i] || {};
      var reject = str(o.kind).indexOf("reject") === 0;
      var button = el("button", "button-small permission-option" + (reject ? " button-danger" : ""), str(o.name));
      button.type = "button";
      button.setAttribute("data-option-id", str(o.optionId));
      options.appendChild(button);
    }
    li.appendChild(options);
    var error = el("p", "form-error permission-error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    li.appendChild(error);
    stream.appendChild(li);
  }

  function permissionAnswered(p) {
    var li = findBy(stream, ".permission", "data-request-id", str(p.request_id));
    if (!li || li.querySelector(".permission-answer")) return;
    var option = str(p.option_id);
    var button = findBy(li, ".permission-option", "data-option-id", option);
    var name = button ? button.textContent : option;
    var gone = li.querySelectorAll(".permission-options, .permission-error");
    for (var i = 0; i < gone.length; i++) li.removeChild(gone[i]);
    var by = str(p.by);
    li.appendChild(el("p", "permission-answer", "Answered: " + name + (by ? " (" + by + ")" : "")));
  }

  function eventText(kind, p) {
    var reason = "";
    var keys = ["error", "message", "reason", "detail"];
    for (var i = 0; i < keys.length && !reason; i++) reason = str(p[keys[i]]);
    function withReason(what) {
      return reason ? what + ": " + reason : what;
    }
    switch (kind) {
      case "session_started": return ["Agent session started", "event-info"];
      case "turn_ended": return ["Turn ended (" + (str(p.stop_reason) || "unknown") + ")", "event-ok"];
      case "turn_failed": return [withReason("Turn failed"), "event-error"];
      case "agent_start_failed": return [withReason("The agent could not start"), "event-error"];
      case "agent_exited": {
        var how = typeof p.code === "number" ? "code " + p.code
          : str(p.signal) ? "signal " + str(p.signal) : "no status";
        var during = p.during_turn === true;
        return ["Agent exited (" + how + ")" + (during ? " during a turn" : ""), during ? "event-error" : "event-info"];
      }
      default: return null;
    }
  }

  function onMessage(frame) {
    var seq = typeof frame.seq === "number" ? frame.seq : 0;
    if (seq <= after) return;
    after = seq;
    var p = frame.payload && typeof frame.payload === "object" ? frame.payload : {};
    var kind = str(frame.kind);
    if (kind === "prompt_sent") promptSent(str(p.prompt_id));
    else if (kind === "update") update(p.update);
    else if (kind === "permission_requested") permissionRequested(p);
    else if (kind === "permission_answered") permissionAnswered(p);
    else {
      var event = eventText(kind, p);
      if (event) stream.appendChild(el("li", "msg msg-event " + event[1], event[0]));
    }
    if (kind === "turn_ended" || kind === "turn_failed" || kind === "agent_exited") {
      refreshTask();
      refreshSessions();
    }
  }

  /* ----- The live stream ----- */

  var socket = null;
  var retryMs = 1000;

  function setLive(text) {
    if (liveState) liveState.textContent = text;
  }

  function connect() {
    if (typeof WebSocket !== "function") {
      setLive("Live updates need a browser with WebSockets; reload to see new messages.");
      return;
    }
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var ws;
    try {
      ws = new WebSocket(scheme + "//" + window.location.host + apiBase + "/ws?after=" + after);
    } catch (_) {
      setLive("Live updates are unavailable; reload to try again.");
      return;
    }
    socket = ws;
    ws.onopen = function () {
      retryMs = 1000;
      setLive("live");
    };
    ws.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (!frame || typeof frame !== "object") return;
      if (frame.type === "prompt") onPrompt(frame);
      else if (frame.type === "message") onMessage(frame);
    };
    ws.onclose = function () {
      if (socket !== ws) return;
      socket = null;
      setLive("reconnecting\u2026");
      window.setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    };
  }

  /* ----- The task ----- */

  var taskTimer = null;

  function showTask(task) {
    var status = str(task.status);
    chat.setAttribute("data-task-status", status);
    var badge = document.getElementById("task-status");
    if (badge) {
      badge.textContent = status;
      badge.className = "badge " + statusClass(TASK_STATUSES, status);
    }
    var branch = document.getElementById("task-branch");
    if (branch && task.branch) branch.textContent = str(task.branch);
    var pr = document.getElementById("pr-link");
    var url = str(task.pr_url);
    if (pr && /^https?:\/\//i.test(url)) {
      pr.setAttribute("href", url);
      pr.hidden = false;
    }
    var failure = document.getElementById("task-failure");
    if (failure) {
      var reason = str(task.failure_reason);
      var step = str(task.failed_step);
      failure.textContent = reason ? (step ? step + ": " : "") + reason : "";
      failure.hidden = !reason;
    }
    var cancel = document.getElementById("task-cancel");
    if (cancel) cancel.hidden = !!ENDED[status];
    if (ENDED[status] && taskTimer !== null) {
      window.clearInterval(taskTimer);
      taskTimer = null;
    }
  }

  function refreshTask() {
    if (!taskUrl) return;
    api("GET", taskUrl).then(function (r) {
      if (r.ok && r.data && r.data.task) showTask(r.data.task);
    }, function () {});
  }

  /* ----- Session statuses ----- */

  var projectId = chat.getAttribute("data-project-id");
  var sessionId = chat.getAttribute("data-session-id");

  function refreshSessions() {
    api("GET", "/api/projects/" + encodeURIComponent(projectId) + "/sessions").then(function (r) {
      var list = r.ok && r.data && Array.isArray(r.data.sessions) ? r.data.sessions : [];
      for (var i = 0; i < list.length; i++) {
        var s = list[i] || {};
        var status = str(s.status);
        var cls = "badge " + statusClass(SESSION_STATUSES, status);
        var item = findBy(document, ".session-item", "data-session-id", str(s.id));
        var badge = item && item.querySelector(".badge");
        if (badge) {
          badge.textContent = status;
          badge.className = cls;
          badge.setAttribute("data-status", status);
        }
        if (s.id === sessionId) {
          var head = document.getElementById("session-status");
          if (head) {
            head.textContent = status;
            head.className = cls;
          }
        }
      }
    }, function () {});
  }

  /* ----- Actions ----- */

  stream.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest(".permission-option") : null;
    if (!button) return;
    var li = button.closest(".permission");
    var error = li.querySelector(".permission-error");
    var buttons = li.querySelectorAll(".permission-option");
    var i;
    for (i = 0; i < buttons.length; i++) buttons[i].disabled = true;
    showError(error, "");
    var url = apiBase + "/permissions/" + encodeURIComponent(li.getAttribute("data-request-id"));
    api("POST", url, { option_id: button.getAttribute("data-option-id") }).then(
      function (r) {
        if (r.ok) return; /* permission_answered arrives over the stream */
        showError(error, r.status === 404
          ? "Answering permissions is not available yet (" + describe(r.data, r.status) + ")"
          : describe(r.data, r.status));
        for (i = 0; i < buttons.length; i++) buttons[i].disabled = false;
      },
      function (err) {
        showError(error, networkError(err));
        for (i = 0; i < buttons.length; i++) buttons[i].disabled = false;
      }
    );
  });

  var cancel = document.getElementById("task-cancel");
  if (cancel && taskUrl) {
    cancel.addEventListener("click", function () {
      if (!window.confirm("Cancel this task? The agent stops and nothing more is pushed.")) return;
      var error = document.getElementById("task-cancel-error");
      showError(error, "");
      cancel.disabled = true;
      api("POST", taskUrl + "/cancel").then(
        function (r) {
          cancel.disabled = false;
          if (!r.ok) showError(error, describe(r.data, r.status));
          else if (r.data && r.data.task) showTask(r.data.task);
        },
        function (err) {
          cancel.disabled = false;
          showError(error, networkError(err));
        }
      );
    });
  }

  var followup = document.getElementById("followup-form");
  if (followup) {
    followup.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = document.getElementById("followup-text");
      var error = document.getElementById("followup-error");
      var button = document.getElementById("followup-submit");
      if (!text.value.trim()) return;
      showError(error, "");
      button.disabled = true;
      api("POST", apiBase + "/prompts", { text: text.value }).then(
        function (r) {
          button.disabled = false;
          if (r.ok) {
            text.value = "";
            /* A task whose workspace is gone continues in a new session. */
            if (r.data && r.data.continued_from && typeof r.data.session_id === "string") {
              var next = new URL(window.location.href);
              next.searchParams.set("session", r.data.session_id);
              window.location.assign(next.toString());
            }
            return; /* otherwise the prompt arrives over the stream */
          }
          showError(error, describe(r.data, r.status));
        },
        function (err) {
          button.disabled = false;
          showError(error, networkError(err));
        }
      );
    });
  }

  connect();
  if (taskUrl && !ENDED[chat.getAttribute("data-task-status")]) {
    taskTimer = window.setInterval(refreshTask, 3000);
    refreshTask();
  }
  window.setInterval(function () {
    if (!document.hidden) refreshSessions();
  }, 10000);
})();
