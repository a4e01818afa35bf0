/* SAM forms: sends <form data-api="METHOD"> to the JSON API with fetch.
   Loaded with `defer`; no inline script or handler anywhere (the CSP is
   default-src 'self'). No dependencies, no build step.

   Contract (the templates in web/templates/ follow it):
   - data-api="POST|PUT|PATCH|DELETE" is the method; `action` the URL.
   - data-action-template="/api/x/{agent}" replaces `action`: each {field}
     is filled, URL-encoded, from the form field of that name, and that
     field is then left out of the body.
   - The body is a JSON object of the named inputs, selects and textareas:
     "" is omitted (or sent as null with data-empty="null"); data-type="number"
     is parsed as a number; a checkbox is a boolean; "a.b" nests {"a":{"b":…}}.
     DELETE, and forms with nothing to send, send no body.
   - data-confirm="question" asks confirm() first.
   - On success: with data-reveal="<id>" and a `token` in the response, the
     token goes into that element, which (and any hidden ancestor) is shown,
     and the page stays; else data-redirect (its {id} taken from the
     response's `id`); else the page reloads.
   - On failure: "code: message" from the error body goes into the form's
     [role=alert] element. Submit buttons are disabled while in flight. */
(function () {
  "use strict";

  var BODYLESS = { GET: true, HEAD: true, DELETE: true };
  var SKIPPED_TYPES = { submit: true, button: true, reset: true, image: true, file: true };

  function isUnsafeKey(key) {
    return key === "" || key === "__proto__" || key === "constructor" || key === "prototype";
  }

  function fieldValue(el) {
    if (el.type === "checkbox") return el.checked;
    if (el.type === "radio" && !el.checked) return undefined;
    var value = el.value;
    if (value === "") return el.getAttribute("data-empty") === "null" ? null : undefined;
    if (el.getAttribute("data-type") === "number") {
      var n = Number(value);
      return isFinite(n) ? n : value;
    }
    return value;
  }

  function collect(form, skip) {
    var body = {};
    var count = 0;
    for (var i = 0; i < form.elements.length; i++) {
      var el = form.elements[i];
      var tag = el.tagName;
      if (tag !== "INPUT" && tag !== "SELECT" && tag !== "TEXTAREA") continue;
      if (!el.name || el.disabled || SKIPPED_TYPES[el.type] || skip[el.name]) continue;
      var value = fieldValue(el);
      if (value === undefined) continue;
      var path = el.name.split(".");
      if (path.some(isUnsafeKey)) continue;
      var node = body;
      for (var j = 0; j < path.length - 1; j++) {
        if (typeof node[path[j]] !== "object" || node[path[j]] === null) node[path[j]] = {};
        node = node[path[j]];
      }
      node[path[path.length - 1]] = value;
      count++;
    }
    return count > 0 ? body : null;
  }

  function fillTemplate(template, form, used) {
    return template.replace(/\{([A-Za-z0-9_.-]+)\}/g, function (_, name) {
      var field = form.elements.namedItem(name);
      var value = field && typeof field.value === "string" ? field.value : "";
      if (value === "") throw new Error("missing_field: choose a value for " + name);
      used[name] = true;
      return encodeURIComponent(value);
    });
  }

  function showError(form, message) {
    var box = form.querySelector("[role=alert]");
    if (!box) {
      if (message) window.alert(message);
      return;
    }
    box.textContent = message;
    box.hidden = !message;
  }

  function describe(data, response) {
    var err = data && typeof data.error === "object" && data.error ? data.error : data;
    if (err && typeof err.code === "string") return err.code + ": " + (err.message || "");
    return "http_" + response.status + ": " + (response.statusText || "the request failed");
  }

  function readJson(response) {
    return response.text().then(function (text) {
      try {
        return text ? JSON.parse(text) : null;
      } catch (_) {
        return null;
      }
    });
  }

  function setBusy(form, busy) {
    form.setAttribute("aria-busy", busy ? "true" : "false");
    var buttons = form.querySelectorAll("button:not([type]), button[type=submit], input[type=submit]");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = busy;
  }

  /* Returns true when the page is about to navigate away. */
  function succeed(form, data) {
    var revealId = form.getAttribute("data-reveal");
    var target = revealId && document.getElementById(revealId);
    if (target && data && typeof data.token === "string") {
      target.textContent = data.token;
      for (var n = target; n && n !== document.body; n = n.parentElement) n.hidden = false;
      form.reset();
      return false;
    }
    var redirect = form.getAttribute("data-redirect");
    if (redirect) {
      var id = data && data.id != null ? String(data.id) : "";
      window.location.assign(redirect.replace(/\{id\}/g, encodeURIComponent(id)));
    } else {
      window.location.reload();
    }
    return true;
  }

  function send(form) {
    showError(form, "");
    var method = (form.getAttribute("data-api") || "POST").toUpperCase();
    var used = {};
    var url;
    try {
      var template = form.getAttribute("data-action-template");
      url = template ? fillTemplate(template, form, used) : form.getAttribute("action");
    } catch (e) {
      showError(form, e.message);
      return;
    }
    var init = { method: method, credentials: "same-origin", headers: { accept: "application/json" } };
    var body = BODYLESS[method] ? null : collect(form, used);
    if (body) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    setBusy(form, true);
    fetch(url, init)
      .then(function (response) {
        return readJson(response).then(function (data) {
          if (!response.ok) throw new Error(describe(data, response));
          return succeed(form, data);
        });
      })
      .then(
        function (leaving) {
          if (!leaving) setBusy(form, false);
        },
        function (err) {
          var message = err && err.message ? err.message : String(err);
          if (err instanceof TypeError) message = "network_error: " + message;
          showError(form, message);
          setBusy(form, false);
        }
      );
  }

  /* Pages that change on the server side ask to be reloaded every N seconds
     with <meta name="sam-refresh" content="N">. Unlike a meta refresh, this
     waits while a form's request is in flight or its error is on screen. */
  var refresh = document.querySelector('meta[name="sam-refresh"]');
  var seconds = refresh ? parseInt(refresh.getAttribute("content"), 10) : 0;
  if (seconds > 0) {
    window.setInterval(function () {
      if (document.querySelector('form[aria-busy="true"]')) return;
      var alerts = document.querySelectorAll("form [role=alert]");
      for (var i = 0; i < alerts.length; i++) {
        if (alerts[i].textContent) return;
      }
      window.location.reload();
    }, seconds * 1000);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-api")) return;
    event.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) return;
    send(form);
  });
})();
