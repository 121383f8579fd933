// Hash routes → page modules. A page is `async (main, params) => void` that fills `main` and
// sets the title; the router scrolls to the top and focuses the page heading on every navigation.
import { auth, plainError } from "./api.js";
import { h } from "./dom.js";
import { loginPage } from "./page-login.js";
import { homePage } from "./page-home.js";
import { coursePage } from "./page-course.js";
import { sessionPage } from "./page-session.js";
import { reviewPage } from "./page-review.js";

const ROUTES = [
  { pattern: /^#\/login$/, page: loginPage, public: true },
  { pattern: /^#\/courses\/(\d+)$/, page: coursePage },
  { pattern: /^#\/sessions\/(\d+)\/review$/, page: reviewPage },
  { pattern: /^#\/sessions\/(\d+)$/, page: sessionPage },
  { pattern: /^#?\/?$/, page: homePage },
];

const main = document.getElementById("main");
let cleanup = null;
let generation = 0;
// The title of the page shown last, put back when a stale page set its own.
let latestTitle = null;

export function start() {
  window.addEventListener("hashchange", render);
  render();
}

async function render() {
  const hash = location.hash || "#/";
  const match = ROUTES.map((r) => ({ r, m: hash.match(r.pattern) })).find((x) => x.m);
  if (!auth.loggedIn() && !(match && match.r.public)) { location.hash = "#/login"; return; }
  renderNav();
  if (cleanup) { cleanup(); cleanup = null; }
  // Toasts belong to the page they were shown on; an Undo still pending moves to the bottom.
  for (const t of document.querySelectorAll("#toasts .toast")) {
    if (!t.querySelector(".toast-action")) t.remove();
    else { t.classList.remove("anchored"); t.removeAttribute("style"); }
  }
  // The navigation token: a page whose data arrives after the user went elsewhere is stale.
  // It is built off-screen (in `slot`) and only attached if it is still the latest; a stale
  // page's cleanup runs at once (its key handlers, timers), and its DOM and title are dropped.
  const mine = ++generation;
  const title = document.title;
  window.scrollTo(0, 0);
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  const slot = document.createElement("div");
  try {
    if (!match) throw new Error(`no page at ${hash}`);
    const params = match.m.slice(1).map(Number);
    const result = await match.r.page(slot, ...params);
    if (mine !== generation) {
      if (typeof result === "function") result();
      document.title = latestTitle ?? title;
      return;
    }
    main.replaceChildren(...slot.childNodes);
    if (typeof result === "function") cleanup = result;
  } catch (e) {
    if (mine !== generation) return;
    document.title = "Something went wrong — AttendanSee";
    main.replaceChildren(h("h1", { tabindex: "-1" }, "Something went wrong"), h("p", { class: "bad", role: "alert" }, plainError(e)),
      h("p", {}, h("a", { href: "#/" }, "Back to your courses")));
  }
  latestTitle = document.title;
  window.scrollTo(0, 0);
  const heading = main.querySelector("h1");
  if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus({ preventScroll: true }); }
}

function renderNav() {
  const nav = document.getElementById("nav");
  nav.replaceChildren();
  if (!auth.loggedIn()) return;
  nav.append(
    h("a", { href: "#/" }, "Courses"),
    h("button", {
      type: "button",
      onclick: async () => {
        try { await auth.logout(); } catch { /* the token is forgotten either way */ }
        location.hash = "#/login";
      },
    }, "Log out"));
}
