/*
 * Spravka chat widget: one file, no dependencies, no build step.
 *
 *   <script src="https://spravka.example/static/widget.js" defer
 *           data-api="https://spravka.example" data-key="spk_…" data-collection="default"
 *           data-lang="ru"></script>
 *
 * Optional: data-open="true" (open at once), data-target="#help" (render inside that element
 * instead of a floating button), data-title="…". The key must be of role user or bot: it is
 * visible to anyone who opens the page, and it reads only its access groups (e.g. public).
 * The widget lives in a shadow root, so the host page's CSS cannot break it (and vice versa).
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.SpravkaWidget) return;
  var ds = script.dataset || {};
  var apiBase = (ds.api || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  var apiKey = ds.key || "";
  var collection = ds.collection || "";
  var navLang = (navigator.language || "ru").slice(0, 2).toLowerCase();
  var lang = (ds.lang || navLang) === "en" ? "en" : "ru";

  var STRINGS = {
    ru: {
      title: "Справка", launcher: "Задать вопрос", placeholder: "Ваш вопрос…", send: "Отправить",
      close: "Закрыть", sources: "Источники", thinking: "Ищу ответ…", helpful: "Полезно",
      unhelpful: "Не помогло", thanks: "Спасибо за отзыв!", commentPh: "Что было не так? (необязательно)",
      commentSend: "Отправить", operator: "Позвать оператора", contactPh: "Телефон или e-mail для связи",
      operatorSend: "Передать оператору", operatorDone: "Вопрос передан оператору. Мы свяжемся с вами.",
      operatorAnswer: "Ответ оператора",
      error: "Не удалось получить ответ", rate: "Слишком много вопросов подряд. Повторите через {s} с.",
      noKey: "Виджет не настроен: нет ключа API (data-key).", open: "Открыть источник",
      related: "Возможно, поможет:",
      greeting: "Здравствуйте! Спросите о чём-нибудь — отвечу по базе знаний и покажу источники."
    },
    en: {
      title: "Help", launcher: "Ask a question", placeholder: "Your question…", send: "Send",
      close: "Close", sources: "Sources", thinking: "Looking for the answer…", helpful: "Helpful",
      unhelpful: "Not helpful", thanks: "Thank you for the feedback!", commentPh: "What was wrong? (optional)",
      commentSend: "Send", operator: "Call an operator", contactPh: "Phone or e-mail to reach you",
      operatorSend: "Pass to an operator", operatorDone: "Your question is with an operator. We will contact you.",
      operatorAnswer: "The operator's answer",
      error: "Could not get an answer", rate: "Too many questions in a row. Try again in {s} s.",
      noKey: "The widget is not configured: no API key (data-key).", open: "Open the source",
      related: "This may help:",
      greeting: "Hello! Ask me anything: I answer from the knowledge base and show the sources."
    }
  };
  var T = STRINGS[lang];

  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}",
    ".sw-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:24px;",
    "padding:12px 18px;background:#1f5fbf;color:#fff;font-size:15px;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}",
    ".sw-panel{position:fixed;right:20px;bottom:20px;z-index:2147483001;width:380px;max-width:calc(100vw - 24px);",
    "height:560px;max-height:calc(100vh - 40px);display:flex;flex-direction:column;background:#fff;color:#1d1d1f;",
    "border-radius:14px;box-shadow:0 8px 30px rgba(0,0,0,.3);overflow:hidden;font-size:14px;line-height:1.45}",
    ".sw-inline .sw-panel{position:static;width:100%;max-width:none;height:100%;min-height:420px;box-shadow:none;border:1px solid #ddd}",
    ".sw-panel[hidden],.sw-launcher[hidden],[hidden]{display:none!important}",
    ".sw-head{display:flex;align-items:center;justify-content:space-between;padding:10px 14px;background:#1f5fbf;color:#fff}",
    ".sw-head b{font-size:15px}.sw-x{background:none;border:0;color:#fff;font-size:22px;cursor:pointer;line-height:1}",
    ".sw-log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:10px;background:#f5f6f8}",
    ".sw-msg{max-width:92%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word}",
    ".sw-user{align-self:flex-end;background:#1f5fbf;color:#fff;border-bottom-right-radius:4px}",
    ".sw-bot{align-self:flex-start;background:#fff;border:1px solid #e2e4e8;border-bottom-left-radius:4px}",
    ".sw-error{color:#b00020}.sw-muted{color:#6b6f76;font-style:italic}",
    ".sw-cite{border:0;background:#e8effb;color:#1f5fbf;border-radius:4px;padding:0 4px;margin:0 1px;font-size:12px;cursor:pointer;vertical-align:baseline}",
    ".sw-sources{margin:8px 0 0;padding:8px 0 0;border-top:1px solid #eee;list-style:none;font-size:13px}",
    ".sw-sources li{margin:3px 0;border-radius:6px;padding:2px 4px}.sw-sources li.sw-hl{background:#fff6d6}",
    ".sw-src{border:0;background:none;padding:0;color:#1f5fbf;cursor:pointer;text-align:left;font-size:13px}",
    ".sw-snippet{margin:4px 0 2px 10px;padding-left:8px;border-left:3px solid #cfd8e6;color:#333;white-space:pre-wrap}",
    ".sw-snippet a{color:#1f5fbf}",
    ".sw-actions{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px;align-items:center}",
    ".sw-related{margin-top:8px;padding-top:6px;border-top:1px solid #eee;font-size:13px}",
    ".sw-related ul{margin:4px 0 0;padding-left:18px}.sw-related a{color:#1f5fbf}",
    ".sw-btn{border:1px solid #cfd3da;background:#fff;border-radius:16px;padding:3px 10px;cursor:pointer;font-size:13px;color:#1d1d1f}",
    ".sw-btn:hover{background:#f0f2f5}.sw-btn:disabled{opacity:.5;cursor:default}",
    ".sw-icon{width:15px;height:15px;vertical-align:-3px}",
    ".sw-op{border-color:#1f5fbf;color:#1f5fbf}",
    ".sw-sub{display:flex;gap:6px;margin-top:6px}.sw-sub input{flex:1;min-width:0;padding:5px 8px;border:1px solid #cfd3da;border-radius:8px;font-size:13px}",
    ".sw-form{display:flex;gap:8px;padding:10px;border-top:1px solid #e2e4e8;background:#fff}",
    ".sw-form textarea{flex:1;resize:none;border:1px solid #cfd3da;border-radius:10px;padding:8px;font-size:14px;min-height:40px;max-height:120px}",
    ".sw-send{border:0;border-radius:10px;background:#1f5fbf;color:#fff;padding:0 14px;cursor:pointer;font-size:14px}",
    ".sw-send:disabled{opacity:.5;cursor:default}",
    ".sw-foot{font-size:11px;color:#8a8f98;text-align:center;padding:0 0 6px;background:#fff}"
  ].join("\n");

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  // Material Design icons (Apache-2.0) as inline SVG: emoji need a colour-emoji font, which
  // many Linux desktops and kiosk browsers lack (the buttons showed empty boxes there)
  var ICONS = {
    up: "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
    down: "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z",
    chat: "M20 2H4c-1.1 0-1.99.9-1.99 2L2 22l4-4h14c1.1 0 2-.9 2-2V4c0-1.1-.9-2-2-2zM6 9h12v2H6V9zm8 5H6v-2h8v2zm4-6H6V6h12v2z",
    op: "M12 1c-4.97 0-9 4.03-9 9v7c0 1.66 1.34 3 3 3h3v-8H5v-2c0-3.87 3.13-7 7-7s7 3.13 7 7v2h-4v8h4v1h-7v2h6c1.66 0 3-1.34 3-3V10c0-4.97-4.03-9-9-9z"
  };

  function iconButton(cls, icon, label, text) {
    var b = el("button", cls);
    b.type = "button";
    b.title = label;
    b.setAttribute("aria-label", label);
    // parsed as HTML (the SVG namespace comes with the <svg> tag); ICONS are constants above
    b.innerHTML = '<svg class="sw-icon" viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="' +
      ICONS[icon] + '"></path></svg>';
    if (text) b.appendChild(document.createTextNode(" " + text));
    return b;
  }

  function headers(json) {
    var h = { "Authorization": "Bearer " + apiKey };
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  function post(path, body) {
    return fetch(apiBase + path, { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  }

  /* A readable message from an error response (our API: {"error": {"message": …}}). */
  function errorText(resp) {
    if (resp.status === 429) {
      var s = parseInt(resp.headers.get("Retry-After") || "1", 10);
      return Promise.resolve(T.rate.replace("{s}", String(s)));
    }
    return resp.json().then(function (b) {
      return T.error + ": " + ((b && b.error && b.error.message) || resp.status);
    }, function () { return T.error + " (" + resp.status + ")"; });
  }

  /* Server-sent events over fetch (EventSource cannot send an Authorization header). */
  function readEvents(resp, onEvent) {
    var reader = resp.body.getReader();
    var decoder = new TextDecoder();
    var buf = "";
    function dispatch(frame) {
      var name = "message", data = [];
      frame.split("\n").forEach(function (line) {
        if (line.indexOf("event:") === 0) name = line.slice(6).trim();
        else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
      });
      if (!data.length) return;
      var parsed;
      try { parsed = JSON.parse(data.join("\n")); } catch (e) { return; }
      onEvent(name, parsed);
    }
    function pump() {
      return reader.read().then(function (r) {
        if (r.done) {
          if (buf.trim()) dispatch(buf);
          return;
        }
        buf += decoder.decode(r.value, { stream: true }).replace(/\r\n/g, "\n");
        var i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          dispatch(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
        return pump();
      });
    }
    return pump();
  }

  // ---- the DOM ------------------------------------------------------------------------------
  var host = el("div");
  host.setAttribute("data-spravka-widget", "");
  var target = ds.target ? document.querySelector(ds.target) : null;
  var root = host.attachShadow({ mode: "open" });
  var style = el("style");
  style.textContent = CSS;
  root.appendChild(style);
  var frame = el("div", target ? "sw-inline" : "sw-floating");
  root.appendChild(frame);

  var launcher = iconButton("sw-launcher", "chat", T.launcher, T.launcher);
  var panel = el("section", "sw-panel");
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", ds.title || T.title);
  var head = el("div", "sw-head");
  head.appendChild(el("b", null, ds.title || T.title));
  var closeBtn = el("button", "sw-x", "×");
  closeBtn.type = "button";
  closeBtn.setAttribute("aria-label", T.close);
  head.appendChild(closeBtn);
  var log = el("div", "sw-log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  var form = el("form", "sw-form");
  var input = el("textarea");
  input.name = "q";
  input.rows = 2;
  input.maxLength = 4000;
  input.placeholder = T.placeholder;
  var sendBtn = el("button", "sw-send", T.send);
  sendBtn.type = "submit";
  form.appendChild(input);
  form.appendChild(sendBtn);
  panel.appendChild(head);
  panel.appendChild(log);
  panel.appendChild(form);
  panel.appendChild(el("div", "sw-foot", "Spravka"));
  frame.appendChild(launcher);
  frame.appendChild(panel);

  function setOpen(open) {
    panel.hidden = !open;
    launcher.hidden = open || !!target;
    if (open) input.focus();
  }
  launcher.addEventListener("click", function () { setOpen(true); });
  closeBtn.addEventListener("click", function () { setOpen(false); });
  if (target) closeBtn.hidden = true;

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function say(cls, text) {
    var m = el("div", "sw-msg " + cls, text);
    log.appendChild(m);
    scrollDown();
    return m;
  }

  say("sw-bot", apiKey ? T.greeting : T.noKey);

  // ---- an answer ------------------------------------------------------------------------------
  /* The answer text with [n] markers turned into buttons that open source n. */
  function renderText(box, text, sourceItems) {
    box.textContent = "";
    var parts = String(text).split(/(\[\d+\])/);
    parts.forEach(function (part) {
      var m = /^\[(\d+)\]$/.exec(part);
      if (m && sourceItems[m[1]]) {
        var b = el("button", "sw-cite", m[1]);
        b.type = "button";
        b.title = T.open;
        b.setAttribute("data-n", m[1]);
        b.addEventListener("click", function () { sourceItems[m[1]].reveal(); });
        box.appendChild(b);
      } else if (part) {
        box.appendChild(document.createTextNode(part));
      }
    });
  }

  function renderSources(msg, citations) {
    var items = {};
    if (!citations || !citations.length) return items;
    var list = el("ol", "sw-sources");
    list.setAttribute("aria-label", T.sources);
    citations.forEach(function (c) {
      var li = el("li");
      li.setAttribute("data-n", String(c.n));
      var title = el("button", "sw-src", "[" + c.n + "] " + (c.title || c.doc_id));
      title.type = "button";
      var snip = el("div", "sw-snippet", c.snippet || "");
      snip.hidden = true;
      if (c.url && /^https?:\/\//i.test(c.url)) {
        var a = el("a", null, c.url);
        a.href = c.url;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        snip.appendChild(document.createElement("br"));
        snip.appendChild(a);
      }
      title.addEventListener("click", function () { snip.hidden = !snip.hidden; });
      li.appendChild(title);
      li.appendChild(snip);
      list.appendChild(li);
      items[String(c.n)] = {
        reveal: function () {
          snip.hidden = false;
          Array.prototype.forEach.call(list.children, function (x) { x.classList.remove("sw-hl"); });
          li.classList.add("sw-hl");
          li.scrollIntoView({ block: "nearest" });
        }
      };
    });
    msg.appendChild(list);
    return items;
  }

  // With a refusal: the nearest documents, to look at (titles, and a link where the document has one).
  function renderRelated(msg, related) {
    if (!related || !related.length) return;
    var box = el("div", "sw-related");
    box.appendChild(el("div", "sw-muted", T.related));
    var list = el("ul");
    related.forEach(function (r) {
      var li = el("li");
      var name = (r.title || r.doc_id) + (r.heading ? " — " + r.heading : "");
      if (r.url && /^https?:\/\//i.test(r.url)) {
        var a = el("a", null, name);
        a.href = r.url;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        li.appendChild(a);
      } else {
        li.textContent = name;
      }
      list.appendChild(li);
    });
    box.appendChild(list);
    msg.appendChild(box);
  }

  function renderActions(msg, question, answer) {
    var bar = el("div", "sw-actions");
    var up = iconButton("sw-btn sw-up", "up", T.helpful);
    var down = iconButton("sw-btn sw-down", "down", T.unhelpful);
    var op = iconButton("sw-btn sw-op", "op", T.operator, T.operator);
    bar.appendChild(up);
    bar.appendChild(down);
    bar.appendChild(op);
    msg.appendChild(bar);
    var note = el("div", "sw-muted");
    note.hidden = true;
    msg.appendChild(note);

    function sendFeedback(rating, comment) {
      var body = { answer_id: answer.id, rating: rating };
      if (comment) body.comment = comment;
      return post("/v1/feedback", body).then(function (r) {
        return r.ok ? T.thanks : errorText(r);
      }, function () { return T.error; });
    }

    function rate(rating) {
      up.disabled = down.disabled = true;
      (rating === "up" ? up : down).classList.add("sw-chosen");
      sendFeedback(rating).then(function (text) {
        note.textContent = text;
        note.hidden = false;
        if (rating === "down") askComment();
        scrollDown();
      });
    }

    function askComment() {
      var row = el("form", "sw-sub sw-comment");
      var box = el("input");
      box.placeholder = T.commentPh;
      box.maxLength = 2000;
      var b = el("button", "sw-btn", T.commentSend);
      b.type = "submit";
      row.appendChild(box);
      row.appendChild(b);
      msg.appendChild(row);
      row.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var text = box.value.trim();
        if (!text) return;
        b.disabled = true;
        sendFeedback("down", text).then(function (t) { row.replaceWith(el("div", "sw-muted", t)); });
      });
    }

    up.addEventListener("click", function () { rate("up"); });
    down.addEventListener("click", function () { rate("down"); });
    op.addEventListener("click", function () {
      op.disabled = true;
      var row = el("form", "sw-sub sw-escalate");
      var contact = el("input");
      contact.placeholder = T.contactPh;
      contact.required = true;
      contact.maxLength = 300;
      var b = el("button", "sw-btn sw-op", T.operatorSend);
      b.type = "submit";
      row.appendChild(contact);
      row.appendChild(b);
      msg.appendChild(row);
      contact.focus();
      scrollDown();
      row.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var c = contact.value.trim();
        if (!c) return;
        b.disabled = true;
        var body = { question: question, answer_id: answer.id, contact: c, language: lang };
        if (collection) body.collection = collection;
        post("/v1/escalations", body).then(function (r) {
          if (!r.ok) return errorText(r);
          return r.json().then(function (b) { if (b && b.id) pollOperator(b.id); return T.operatorDone; },
                               function () { return T.operatorDone; });
        }, function () { return T.error; }).then(function (t) {
          row.replaceWith(el("div", "sw-muted sw-escalated", t));
          scrollDown();
        });
      });
    });
  }

  /* The operator answers in the console or the helpdesk; while the page is open (up to half an
     hour) the widget shows the answer and any follow-ups the operator adds after it. */
  function pollOperator(id) {
    var delay = 5000, shown = 0, answered = false, until = Date.now() + 30 * 60000;
    function again(ms) { if (Date.now() < until) setTimeout(tick, ms); }
    function tick() {
      fetch(apiBase + "/v1/escalations/" + encodeURIComponent(id), { headers: headers(false) }).then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (b) {
        if (b && b.state === "dismissed") return;
        if (b && b.state === "done" && b.answer) {
          if (!answered) { say("sw-bot sw-operator", T.operatorAnswer + ": " + b.answer); answered = true; }
          var ups = b.follow_ups || [];
          for (; shown < ups.length; shown++) say("sw-bot sw-operator", T.operatorAnswer + ": " + ups[shown]);
        }
        delay = Math.min(delay * 1.5, 60000);
        again(delay);
      }, function () { again(60000); });
    }
    setTimeout(tick, delay);
  }

  var busy = false;

  function ask(question) {
    question = String(question || "").trim();
    if (!question || busy) return;
    if (!apiKey) { say("sw-bot sw-error", T.noKey); return; }
    busy = true;
    sendBtn.disabled = true;
    say("sw-user", question);
    var msg = say("sw-bot sw-answer", "");
    var textBox = el("div", "sw-text sw-muted", T.thinking);
    msg.appendChild(textBox);
    var streamed = "";
    var finished = false;

    var body = { question: question, stream: true };
    if (collection) body.collection = collection;
    fetch(apiBase + "/v1/ask", {
      method: "POST",
      headers: Object.assign(headers(true), { "Accept": "text/event-stream" }),
      body: JSON.stringify(body)
    }).then(function (resp) {
      if (!resp.ok) return errorText(resp).then(function (t) { throw new Error(t); });
      return readEvents(resp, function (name, data) {
        if (name === "delta") {
          if (!streamed) textBox.className = "sw-text";
          streamed += data.text || "";
          textBox.textContent = streamed;
          scrollDown();
        } else if (name === "reset") {
          streamed = "";
          textBox.textContent = "";
        } else if (name === "answer") {
          finished = true;
          textBox.className = "sw-text";
          msg.setAttribute("data-answer-id", data.id);
          msg.setAttribute("data-status", data.status);
          var items = renderSources(msg, data.citations);
          renderText(textBox, data.answer, items);
          if (data.status !== "answered") renderRelated(msg, data.related);
          renderActions(msg, question, data);
          scrollDown();
        } else if (name === "error") {
          throw new Error(T.error + ": " + ((data.error && data.error.message) || ""));
        }
      });
    }).then(function () {
      if (!finished) throw new Error(T.error);
    }).catch(function (e) {
      textBox.className = "sw-text sw-error";
      textBox.textContent = (e && e.message) || T.error;
    }).then(function () {
      busy = false;
      sendBtn.disabled = false;
      scrollDown();
    });
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = input.value;
    input.value = "";
    ask(q);
  });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });

  function mount() {
    (target || document.body).appendChild(host);
    setOpen(!!target || ds.open === "true");
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);

  window.SpravkaWidget = { open: function () { setOpen(true); }, close: function () { setOpen(false); }, ask: ask };
})();
