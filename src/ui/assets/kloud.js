// kloud's web UI script: live updates and copy buttons. No build step, no library. Pages
// work without it; with it, the part of a page marked #live is fetched again and swapped in
// whenever HostDB changes (server-sent events from /ui/events).
"use strict";
(function () {
  const live = document.getElementById("live");
  const status = document.getElementById("live-state");

  // Copy buttons are hidden without JavaScript (they would do nothing).
  function wireCopy(root) {
    for (const b of root.querySelectorAll("button.copy[data-copy]")) {
      b.hidden = false;
    }
  }
  document.addEventListener("click", function (e) {
    const b = e.target.closest ? e.target.closest("button.copy[data-copy]") : null;
    if (!b) return;
    const text = b.getAttribute("data-copy");
    const done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { b.textContent = "Select and copy"; });
    } else {
      const code = b.previousElementSibling;
      if (code) { window.getSelection().selectAllChildren(code); }
      b.textContent = "Selected";
    }
  });
  wireCopy(document);

  if (!live || !window.EventSource || !window.fetch) return;

  let busy = false, again = false, shown = document.body.getAttribute("data-index");
  function say(text) {
    if (!status) return;
    status.hidden = false;
    status.textContent = text;
  }
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      // A page drawn as the answer to a form names the address it is read from.
      const src = live.getAttribute("data-src") || window.location.href;
      const r = await fetch(src, { credentials: "same-origin", headers: { "X-Kloud-Live": "1" } });
      if (r.ok && !r.redirected) {
        const doc = new DOMParser().parseFromString(await r.text(), "text/html");
        const fresh = doc.getElementById("live");
        if (fresh) {
          // Keep keyboard focus on the same control across the swap.
          const focused = document.activeElement && live.contains(document.activeElement)
            ? document.activeElement.getAttribute("aria-label") : null;
          live.replaceChildren(...fresh.childNodes);
          wireCopy(live);
          if (focused) {
            for (const el of live.querySelectorAll("[aria-label]")) {
              if (el.getAttribute("aria-label") === focused) { el.focus(); break; }
            }
          }
          document.dispatchEvent(new CustomEvent("kloud:updated"));
        }
      }
    } catch (e) {
      say("live updates paused");
    } finally {
      busy = false;
      if (again) { again = false; setTimeout(refresh, 250); }
    }
  }

  const events = new EventSource("/ui/events");
  // The stream says where it starts: a change between drawing the page and now is fetched.
  events.addEventListener("hello", function (e) {
    say("live");
    if (e.data !== shown) { shown = e.data; refresh(); }
  });
  events.addEventListener("change", function (e) {
    say("live");
    if (e.data !== shown) { shown = e.data; refresh(); }
  });
  events.onerror = function () { say("reconnecting"); };
  window.addEventListener("pagehide", function () { events.close(); });
})();
