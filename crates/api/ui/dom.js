// Small DOM helpers shared by every page: element creation, labelled fields, images fetched with
// the token, toasts near the action and a confirmation dialog. No page state lives here.
import { fetchBlob, plainError } from "./api.js";

/** Creates an element: h("button", {class: "x", onclick: f}, "text", child…). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    // Through the CSSOM: the page's Content-Security-Policy forbids inline style attributes.
    else if (k === "style") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let idCounter = 0;
/** A labelled form control: the label wraps the text and the control. */
export function field(text, control, attrs = {}) {
  if (!control.id) control.id = `f${++idCounter}`;
  return h("label", { for: control.id, ...attrs }, h("span", {}, text), control);
}

// Photos and crops need the token, which an <img src> cannot send: they are fetched once, kept as
// object URLs (a review shows the same preview for many faces), lazily and a few at a time.
const blobUrls = new Map();
const queue = [];
let loading = 0;
const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (entry.isIntersecting) { observer.unobserve(entry.target); queue.push(entry.target); }
  }
  pump();
}, { rootMargin: "300px" });

function pump() {
  while (loading < 6 && queue.length) {
    const img = queue.shift();
    loading++;
    imageUrl(img.dataset.src)
      .then((url) => { img.src = url; })
      .catch(() => { img.alt = `${img.alt} (not available)`; })
      .finally(() => { loading--; pump(); });
  }
}

/** The object URL of an API image, fetched at most once. */
export function imageUrl(path) {
  if (!blobUrls.has(path)) {
    const p = fetchBlob(path).then((b) => URL.createObjectURL(b));
    p.catch(() => blobUrls.delete(path));
    blobUrls.set(path, p);
  }
  return blobUrls.get(path);
}

/** An <img> of an API image; `eager` loads it now instead of when scrolled into view. */
export function authImg(path, attrs, { eager = false } = {}) {
  const img = h("img", { ...attrs, "data-src": path });
  if (eager) imageUrl(path).then((u) => { img.src = u; }).catch(() => { img.alt = `${img.alt} (not available)`; });
  else observer.observe(img);
  return img;
}

/** Forgets cached images under a prefix (after a delete or a new upload). */
export function forgetImages(prefix) {
  for (const k of [...blobUrls.keys()]) if (k.startsWith(prefix)) blobUrls.delete(k);
}

/**
 * A toast: a short message shown next to `near` (the control the user acted on) or at the bottom
 * of the screen, with an optional action (Undo). Errors stay until dismissed; success fades.
 */
export function toast(message, { kind = "ok", near = null, action = null, timeout = 6000 } = {}) {
  const region = document.getElementById("toasts");
  const close = () => { el.remove(); };
  const el = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", {}, message),
    action ? h("button", { type: "button", class: "toast-action", onclick: () => { close(); action.run(); } }, action.label) : null,
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", onclick: close }, "×"));
  region.append(el);
  if (near && near.isConnected && window.innerWidth >= 700) {
    const r = near.getBoundingClientRect();
    const top = Math.min(Math.max(8, r.bottom + 8), window.innerHeight - 80);
    el.classList.add("anchored");
    Object.assign(el.style, { top: `${top}px`, left: `${Math.min(Math.max(8, r.left), window.innerWidth - 360)}px` });
  }
  if (kind !== "error" && timeout) setTimeout(close, timeout);
  return el;
}

/** Shows an error as a toast in plain words (with its error_type). */
export function showError(e, near) {
  if (!(e && e.errorType)) console.error(e);
  return toast(plainError(e), { kind: "error", near });
}

/** Runs an action; an error becomes a toast next to `near`. Returns the result or undefined. */
export async function guard(near, action) {
  try { return await action(); } catch (e) { showError(e, near); return undefined; }
}

/** A modal yes/no question; resolves true when confirmed. Focus returns where it was. */
export function confirmDialog(question, confirmLabel = "Delete") {
  const before = document.activeElement;
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-q" },
      h("p", { id: "confirm-q" }, question),
      h("div", { class: "row" },
        h("button", { type: "button", class: "danger", onclick: () => done(true) }, confirmLabel),
        h("button", { type: "button", onclick: () => done(false) }, "Cancel")));
    const done = (ok) => { dialog.close(); dialog.remove(); if (before && before.focus) before.focus(); resolve(ok); };
    dialog.addEventListener("cancel", (ev) => { ev.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Replaces a component's content, keeping focus on the equivalent control when there is one. */
export function swap(root, ...children) {
  const active = document.activeElement;
  const key = active && root.contains(active) ? active.dataset.key : null;
  root.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  if (key) {
    const again = root.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

/** A component: a root element whose `refresh()` re-renders only itself. */
export function component(tag, attrs, render) {
  const root = h(tag, attrs);
  const self = {
    root,
    async refresh() {
      try { swap(root, await render(self)); } catch (e) { swap(root, h("p", { class: "bad" }, plainError(e))); }
    },
  };
  self.ready = self.refresh();
  return self;
}

export function plural(n, one, many = `${one}s`) { return `${n} ${n === 1 ? one : many}`; }

// Deletions wait this long for an Undo before they reach the server.
export const UNDO_MS = 6000;
const pendingDeletes = new Set();
window.addEventListener("pagehide", () => { for (const commit of pendingDeletes) commit(true); });

/**
 * Deletes with a chance to undo: `hide()` at once, the server's delete (`commit(keepalive)`)
 * only after UNDO_MS unless Undo is pressed (then `restore()`). A failed delete restores too.
 */
export function deleteWithUndo({ message, near, hide, restore, commit }) {
  hide();
  let done = false;
  const run = (keepalive = false) => {
    if (done) return;
    done = true;
    pendingDeletes.delete(run);
    commit(keepalive).catch((e) => { restore(); showError(e, near); });
  };
  pendingDeletes.add(run);
  const timer = setTimeout(run, UNDO_MS);
  toast(message, {
    near,
    timeout: UNDO_MS,
    action: { label: "Undo", run: () => { if (done) return; done = true; clearTimeout(timer); pendingDeletes.delete(run); restore(); } },
  });
}
