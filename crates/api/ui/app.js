// AttendanSee web UI: plain JavaScript, no build step, no network beyond this server.
// Hash routes: #/login, #/ (courses), #/courses/ID, #/sessions/ID. The page is a client of the
// JSON API like any other: a bearer token (sessionStorage), errors shown with their error_type.
"use strict";

const API = "/api";
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const errorBox = document.getElementById("error");

// ---------- small helpers ----------

/** Creates an element: h("button", {class: "x", onclick: f}, "text", child…). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    // Through the CSSOM: the page's Content-Security-Policy forbids inline style attributes.
    else if (k === "style") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let idCounter = 0;
/** A labelled form control: the label wraps the text and the control. */
function field(text, control) {
  if (!control.id) control.id = `f${++idCounter}`;
  return h("label", { for: control.id }, text, control);
}

class ApiError extends Error {
  constructor(body, status) {
    super(body.error || `HTTP ${status}`);
    this.errorType = body.error_type || "Internal";
    this.requestId = body.request_id;
    this.status = status;
  }
}

function token() { return sessionStorage.getItem("token"); }

/** Calls the API; JSON in and out. Throws ApiError with the server's error_type. */
async function api(method, path, body, { raw = false } = {}) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  let response;
  try {
    response = await fetch(API + path, { method, headers, body: payload });
  } catch (e) {
    throw new ApiError({ error_type: "NetworkError", error: "the server cannot be reached" }, 0);
  }
  if (response.status === 401 && path !== "/auth/login/") {
    sessionStorage.removeItem("token");
    location.hash = "#/login";
  }
  if (!response.ok) {
    let data;
    try { data = await response.json(); } catch { data = { error: response.statusText } }
    throw new ApiError(data, response.status);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

function showError(e) {
  if (!(e instanceof ApiError)) { console.error(e); e = new ApiError({ error_type: "Internal", error: String(e.message || e) }, 0); }
  errorBox.replaceChildren(...[
    h("code", {}, e.errorType), ": ", e.message,
    e.requestId ? h("span", { class: "muted" }, ` (request ${e.requestId})`) : null,
    " ", h("button", { onclick: () => { errorBox.hidden = true; } }, "Dismiss")].filter((n) => n !== null));
  errorBox.hidden = false;
}

function clearError() { errorBox.hidden = true; }

/** Runs an action, showing any error; returns its result or undefined. */
async function guard(action) {
  try { clearError(); return await action(); } catch (e) { showError(e); }
}

// Photos and crops need the token, which an <img src> cannot send: they are fetched and shown
// as object URLs, lazily (only when scrolled into view) and a few at a time.
const imageQueue = [];
let imagesLoading = 0;
const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (entry.isIntersecting) { observer.unobserve(entry.target); imageQueue.push(entry.target); }
  }
  pumpImages();
}, { rootMargin: "200px" });

function pumpImages() {
  while (imagesLoading < 6 && imageQueue.length) {
    const img = imageQueue.shift();
    imagesLoading++;
    api("GET", img.dataset.src, undefined, { raw: true })
      .then((r) => r.blob())
      .then((blob) => { img.src = URL.createObjectURL(blob); })
      .catch(() => { img.alt = `${img.alt} (not available)`; })
      .finally(() => { imagesLoading--; pumpImages(); });
  }
}

function authImg(path, attrs) {
  const img = h("img", { ...attrs, "data-src": path });
  observer.observe(img);
  return img;
}

/** Downloads an API file (CSV) with the token. */
async function download(path, name) {
  const response = await api("GET", path, undefined, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Every item of a paginated list, page after page. */
async function all(path) {
  const sep = path.includes("?") ? "&" : "?";
  const items = [];
  for (let page = 1; ; page++) {
    const r = await api("GET", `${path}${sep}page_size=500&page=${page}`);
    items.push(...r.results);
    if (!r.next) return items;
  }
}

function chooseFirst() {
  return new ApiError({ error_type: "ValidationError", error: "choose a student first" }, 400);
}

// ---------- routing ----------

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);

async function route() {
  clearError();
  const hash = location.hash || "#/";
  if (!token() && hash !== "#/login") { location.hash = "#/login"; return; }
  renderNav();
  let m;
  try {
    if (hash === "#/login") return renderLogin();
    if ((m = hash.match(/^#\/courses\/(\d+)$/))) return await renderCourse(Number(m[1]));
    if ((m = hash.match(/^#\/sessions\/(\d+)$/))) return await renderSession(Number(m[1]));
    return await renderCourses();
  } catch (e) {
    main.replaceChildren(h("h1", {}, "Something went wrong"), h("p", {}, "See the message above."));
    showError(e);
  }
}

function renderNav() {
  nav.replaceChildren();
  if (!token()) return;
  nav.append(
    h("a", { href: "#/" }, "Courses"),
    h("button", {
      onclick: () => guard(async () => {
        try { await api("POST", "/auth/logout/"); } finally {
          sessionStorage.removeItem("token");
          location.hash = "#/login";
        }
      }),
    }, "Log out"));
}

function page(title, ...sections) {
  document.title = `${title} — AttendanSee`;
  main.replaceChildren(h("h1", {}, title), ...sections);
  main.focus();
}

// ---------- login ----------

function renderLogin() {
  const user = h("input", { name: "username", autocomplete: "username", required: true });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", {
    class: "row",
    onsubmit: (ev) => {
      ev.preventDefault();
      guard(async () => {
        const r = await api("POST", "/auth/login/", { username: user.value, password: pass.value });
        sessionStorage.setItem("token", r.token);
        location.hash = "#/";
      });
    },
  }, field("Username", user), field("Password", pass), h("button", { class: "primary", type: "submit" }, "Log in"));
  page("Log in", h("section", {}, form));
}

// ---------- courses ----------

async function renderCourses() {
  const courses = await all("/attendance/courses/");
  const name = h("input", { required: true });
  const code = h("input", { required: true });
  const create = h("form", {
    class: "row",
    onsubmit: (ev) => {
      ev.preventDefault();
      guard(async () => {
        const c = await api("POST", "/attendance/courses/", { name: name.value, code: code.value });
        location.hash = `#/courses/${c.id}`;
      });
    },
  }, field("Course name", name), field("Code", code), h("button", { class: "primary", type: "submit" }, "Create course"));
  page("Courses",
    h("section", {}, h("h2", {}, "Your courses"),
      courses.length
        ? h("ul", { class: "plain" }, courses.map((c) => h("li", {}, h("a", { href: `#/courses/${c.id}` }, `${c.code} — ${c.name}`))))
        : h("p", { class: "muted" }, "No course yet.")),
    h("section", {}, h("h2", {}, "New course"), create));
}

async function renderCourse(id) {
  const [course, students, sessions] = await Promise.all([
    api("GET", `/attendance/courses/${id}/`),
    all(`/attendance/students/?course=${id}`),
    all(`/attendance/sessions/?course=${id}`),
  ]);
  page(`${course.code} — ${course.name}`,
    studentsSection(course, students),
    sessionsSection(course, sessions),
    await clustersSection(course, students),
    await matrixSection(course));
}

function studentsSection(course, students) {
  const name = h("input", { required: true });
  const external = h("input", {});
  const add = h("form", {
    class: "row",
    onsubmit: (ev) => {
      ev.preventDefault();
      guard(async () => {
        await api("POST", "/attendance/students/", { course: course.id, name: name.value, external_id: external.value || null });
        route();
      });
    },
  }, field("Student name", name), field("Student number", external), h("button", { type: "submit" }, "Add student"));
  const rows = students.map((s) => {
    const status = h("span", { class: "muted", "aria-live": "polite" });
    const thumbs = h("span", { class: "grid" });
    const files = h("input", { type: "file", accept: "image/*,.heic,.heif", multiple: true });
    files.addEventListener("change", () => guard(async () => {
      const form = new FormData();
      for (const f of files.files) form.append("images", f, f.name);
      status.textContent = "Uploading…";
      const r = await api("POST", `/attendance/students/${s.id}/references/`, form);
      status.replaceChildren(`${r.stored} stored`, ...r.results.filter((x) => x.status === "error")
        .map((x) => h("span", { class: "bad" }, ` · ${x.file}: ${x.error_type}: ${x.error}`)));
      files.value = "";
      loadRefs();
    }));
    const loadRefs = () => guard(async () => {
      const refs = await api("GET", `/attendance/students/${s.id}/references/`);
      thumbs.replaceChildren(...refs.map((r) => authImg(`/attendance/face-crops/${r.face}/image/`, { class: "thumb", alt: `Reference face of ${s.name}` })));
    });
    loadRefs();
    return h("tr", {},
      h("td", {}, s.name, s.external_id ? h("div", { class: "muted" }, s.external_id) : null),
      h("td", {}, thumbs),
      h("td", {}, field(`Reference photos for ${s.name}`, files), status));
  });
  return h("section", {}, h("h2", {}, "Students"),
    students.length ? h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Student"), h("th", {}, "Reference faces"), h("th", {}, "Enroll"))), h("tbody", {}, rows)))
      : h("p", { class: "muted" }, "No student yet."),
    add);
}

function sessionsSection(course, sessions) {
  const title = h("input", { required: true });
  const date = h("input", { type: "date", required: true, value: new Date().toISOString().slice(0, 10) });
  const create = h("form", {
    class: "row",
    onsubmit: (ev) => {
      ev.preventDefault();
      guard(async () => {
        const s = await api("POST", "/attendance/sessions/", { course: course.id, title: title.value, held_at: `${date.value}T09:00:00Z` });
        location.hash = `#/sessions/${s.id}`;
      });
    },
  }, field("Session title", title), field("Held on", date), h("button", { class: "primary", type: "submit" }, "Create session"));
  return h("section", {}, h("h2", {}, "Sessions"),
    sessions.length ? h("ul", { class: "plain" }, sessions.map((s) => h("li", {},
      h("a", { href: `#/sessions/${s.id}` }, s.title), h("span", { class: "muted" }, ` ${s.held_at.slice(0, 10)} · ${s.status}`))))
      : h("p", { class: "muted" }, "No session yet."),
    create);
}

async function clustersSection(course, students) {
  const clusters = await api("GET", `/attendance/courses/${course.id}/clusters/`);
  const byId = Object.fromEntries(students.map((s) => [s.id, s]));
  const selected = new Set();
  const merge = h("button", {
    onclick: () => guard(async () => {
      await api("POST", "/attendance/clusters/merge/", { cluster_ids: [...selected] });
      route();
    }),
  }, "Merge selected groups");
  const items = clusters.map((c, i) => {
    const pick = h("input", { type: "checkbox", onchange: (ev) => { ev.target.checked ? selected.add(c.id) : selected.delete(c.id); } });
    const who = studentSelect(students, c.suggestion ? c.suggestion.student : null);
    const newName = h("input", {});
    return h("div", { class: "cluster" },
      h("div", { class: "row" }, field(`Select group ${i + 1}`, pick),
        h("strong", {}, `Group ${i + 1}: ${c.members.length} faces`),
        c.locked ? h("span", { class: "muted" }, "(merged by hand)") : null,
        c.suggestion && byId[c.suggestion.student]
          ? h("span", { class: "muted" }, `looks like ${byId[c.suggestion.student].name} (${c.suggestion.similarity.toFixed(2)})`) : null),
      h("div", { class: "grid" }, c.members.slice(0, 8).map((m) => authImg(`/attendance/face-crops/${m}/image/`, { class: "thumb", alt: `Face ${m}` }))),
      h("div", { class: "row" },
        field(`Name group ${i + 1} as`, who),
        h("button", { onclick: () => guard(async () => { if (!who.value) throw chooseFirst(); await api("POST", `/attendance/clusters/${c.id}/name/`, { student_id: Number(who.value) }); route(); }) }, "Assign group"),
        field(`Or enroll a new student from group ${i + 1}`, newName),
        h("button", { onclick: () => guard(async () => { await api("POST", `/attendance/clusters/${c.id}/name/`, { new_student: { name: newName.value } }); route(); }) }, "Enroll new student")));
  });
  return h("section", {}, h("h2", {}, "Unknown faces, grouped"),
    clusters.length ? [h("p", { class: "muted" }, "Faces nobody matched, grouped across sessions by similarity."), ...items, merge]
      : h("p", { class: "muted" }, "No group of unknown faces."),
    h("button", { onclick: () => guard(async () => { await api("POST", `/attendance/courses/${course.id}/clusters/recluster/`); route(); }) }, "Regroup all unknown faces"));
}

async function matrixSection(course) {
  const m = await api("GET", `/attendance/courses/${course.id}/attendance/`);
  return h("section", {}, h("h2", {}, "Attendance matrix"),
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Student"), m.sessions.map((s) => h("th", {}, s.title)), h("th", {}, "Present"))),
      h("tbody", {}, m.students.map((r) => h("tr", {}, h("td", {}, r.name),
        r.statuses.map((s) => h("td", { class: `status-${s}` }, s)), h("td", {}, r.present)))))),
    h("button", { onclick: () => guard(() => download(`/attendance/courses/${course.id}/attendance/csv/`, `course-${course.id}-attendance.csv`)) }, "Download course CSV"));
}

function studentSelect(students, selected) {
  return h("select", {}, h("option", { value: "" }, "— choose a student —"),
    students.map((s) => h("option", { value: s.id, selected: s.id === selected }, s.name)));
}

// ---------- a session ----------

async function renderSession(id) {
  const session = await api("GET", `/attendance/sessions/${id}/`);
  const course = await api("GET", `/attendance/courses/${session.course}/`);
  const students = await all(`/attendance/students/?course=${course.id}`);
  const names = Object.fromEntries(students.map((s) => [s.id, s.name]));
  const ctx = { session, course, students, names };
  page(session.title,
    h("p", {}, h("a", { href: `#/courses/${course.id}` }, `← ${course.code} — ${course.name}`), h("span", { class: "muted" }, ` · ${session.held_at.slice(0, 10)}`)),
    uploadSection(ctx), processSection(ctx), await photosSection(ctx), await unknownSection(ctx), await attendanceSection(ctx));
}

// The last upload's outcome, kept across the re-render that shows the new photos.
let uploadNotice = null;

function uploadSection({ session }) {
  const files = h("input", { type: "file", accept: "image/*,.heic,.heif", multiple: true });
  const bar = h("progress", { max: 100, value: 0, hidden: true });
  const status = h("div", { "aria-live": "polite" });
  if (uploadNotice && uploadNotice.session === session.id) status.append(...uploadNotice.nodes);
  uploadNotice = null;
  const upload = h("button", {
    class: "primary",
    onclick: () => {
      if (!files.files.length) { status.textContent = "Choose photos first."; return; }
      const form = new FormData();
      for (const f of files.files) form.append("images", f, f.name);
      // XMLHttpRequest, not fetch: it reports upload progress.
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${API}/attendance/sessions/${session.id}/images/`);
      xhr.setRequestHeader("Authorization", `Bearer ${token()}`);
      bar.hidden = false; bar.value = 0; upload.disabled = true;
      xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) bar.value = (100 * ev.loaded) / ev.total; };
      xhr.onload = () => {
        upload.disabled = false;
        let body;
        try { body = JSON.parse(xhr.responseText); } catch { body = { error: xhr.statusText } }
        if (xhr.status !== 200) { showError(new ApiError(body, xhr.status)); return; }
        bar.value = 100;
        uploadNotice = {
          session: session.id,
          nodes: [h("p", {}, `${body.stored} stored, ${body.duplicates} duplicate, ${body.failed} failed`),
            h("ul", { class: "plain" }, body.results.filter((r) => r.status === "error")
              .map((r) => h("li", { class: "bad" }, h("code", {}, r.error_type), `: ${r.file}: ${r.error}`)))],
        };
        route();
      };
      xhr.onerror = () => { upload.disabled = false; showError(new ApiError({ error_type: "NetworkError", error: "the upload did not reach the server" }, 0)); };
      xhr.send(form);
    },
  }, "Upload");
  return h("section", {}, h("h2", {}, "Upload photos"), h("div", { class: "row" }, field("Photos", files), upload), bar, status);
}

// The last processing job's outcome, kept across the re-render that shows its results.
let jobNotice = null;

function processSection({ session }) {
  const bar = h("progress", { max: 1, value: 0, hidden: true });
  const status = h("div", { "aria-live": "polite", id: "job-status" });
  if (jobNotice && jobNotice.session === session.id) status.append(...jobNotice.nodes);
  jobNotice = null;
  const button = h("button", {
    class: "primary",
    onclick: () => guard(async () => {
      button.disabled = true;
      try {
        const { job } = await api("POST", `/attendance/sessions/${session.id}/process/`);
        bar.hidden = false;
        let current = job;
        while (!["succeeded", "partial", "failed", "cancelled"].includes(current.status)) {
          bar.max = Math.max(current.total, 1); bar.value = current.done;
          status.textContent = `Processing: ${current.done} of ${current.total} photos (${current.status})`;
          await new Promise((r) => setTimeout(r, 400));
          current = await api("GET", `/attendance/jobs/${job.id}/`);
        }
        bar.max = Math.max(current.total, 1); bar.value = current.done;
        const a = current.stats.assignment;
        jobNotice = {
          session: session.id,
          nodes: [
            h("p", { class: current.status === "succeeded" && !current.errors.length ? "ok" : "bad" },
              `Processing ${current.status}: ${current.done} of ${current.total} photos, ${current.stats.faces} faces` +
              (a ? `, ${a.matched} recognised` : "") + (current.error ? ` — ${current.error}` : "")),
            h("ul", { class: "plain" }, current.errors.map((e) => h("li", { class: "bad" }, h("code", {}, e.error_type), `: ${e.file || `photo ${e.image}`}: ${e.error}`)))],
        };
        await route();
      } finally { button.disabled = false; }
    }),
  }, "Process photos");
  // After enrolling more students: match this session's faces again (manual decisions are kept).
  const again = h("button", {
    onclick: () => guard(async () => {
      const r = await api("POST", `/attendance/sessions/${session.id}/assign/`);
      jobNotice = { session: session.id, nodes: [h("p", { class: "ok" }, `Recognised again: ${r.assignment.matched} of ${r.assignment.faces} faces matched automatically.`)] };
      await route();
    }),
  }, "Recognise again");
  return h("section", {}, h("h2", {}, "Find faces"), h("p", { class: "muted" }, "Detects and recognises the faces of every photo not processed yet."),
    h("div", { class: "row" }, button, again), bar, status);
}

async function photosSection(ctx) {
  const images = await api("GET", `/attendance/sessions/${ctx.session.id}/images/`);
  const crops = await all(`/attendance/sessions/${ctx.session.id}/face-crops/`);
  const byId = Object.fromEntries(crops.map((c) => [c.id, c]));
  const panel = h("div", { id: "face-panel", "aria-live": "polite" }, h("p", { class: "muted" }, "Select a face to see its crop, embeddings and assignment."));
  const figures = images.map((img) => h("figure", { class: "photo" }, h("div", { class: "frame" },
    authImg(`/attendance/images/${img.id}/preview/`, { alt: img.original_name || `Photo ${img.id}`, width: img.width, height: img.height }),
    (img.faces || []).map((f) => {
      const c = byId[f.id] || {};
      const [x, y, w, hgt] = f.bbox;
      const label = c.student ? ctx.names[c.student] || `student ${c.student}` : (c.not_a_student ? "not a student" : "unknown");
      return h("button", {
        class: `face-box${c.student ? " assigned" : ""}`,
        style: { left: `${(100 * x) / img.width}%`, top: `${(100 * y) / img.height}%`, width: `${(100 * w) / img.width}%`, height: `${(100 * hgt) / img.height}%` },
        "aria-label": `Face ${f.id}: ${label}`,
        "data-face": f.id,
        onclick: (ev) => {
          document.querySelectorAll(".face-box.selected").forEach((b) => b.classList.remove("selected"));
          ev.currentTarget.classList.add("selected");
          guard(() => showFace(ctx, f.id, panel));
        },
      }, h("span", { "aria-hidden": "true" }, label));
    })),
    h("figcaption", {}, `${img.original_name || `Photo ${img.id}`} · ${img.status}${img.error ? ` · ${img.error}` : ""} · ${(img.faces || []).length} faces`),
    img.quality_hint ? h("p", { class: "quality-hint", role: "note" }, img.quality_hint) : null));
  return h("section", {}, h("h2", {}, "Photos"),
    images.length ? h("div", { class: "photos" }, figures) : h("p", { class: "muted" }, "No photo yet."),
    h("h2", {}, "Selected face"), panel);
}

function candidate(ctx, c) {
  return c ? `${ctx.names[c.student] || `student ${c.student}`} (${c.similarity.toFixed(3)})` : "—";
}

// Faces below the calibrated quality limits: shown, never assigned automatically.
const QUALITY_REASONS = {
  too_small: "not assigned: too small to recognise reliably",
  blurred: "not assigned: too blurred to recognise reliably",
  profile: "not assigned: turned too far to recognise reliably",
};

async function showFace(ctx, id, panel) {
  const crop = await api("GET", `/attendance/face-crops/${id}/`);
  const d = crop.decision;
  const who = studentSelect(ctx.students, crop.student);
  const reasons = {
    matched: "matched: above the threshold and ahead of the runner-up",
    below_threshold: "not assigned: nobody is similar enough",
    ambiguous: "not assigned: the runner-up is too close",
    conflict: "not assigned: its best match went to a likelier face in the same photo",
    no_students: "not assigned: nobody is enrolled",
    ...QUALITY_REASONS,
  };
  const act = (method, path, body) => guard(async () => { await api(method, path, body); await route(); });
  panel.replaceChildren(h("div", { class: "panel" },
    authImg(`/attendance/face-crops/${id}/image/`, { class: "thumb crop", alt: `Face ${id}` }),
    h("div", {},
      h("p", {}, h("strong", {}, `Face ${id}: `), crop.student ? ctx.names[crop.student] || `student ${crop.student}` : (crop.not_a_student ? "not a student" : "unknown"),
        crop.assignment_source ? h("span", { class: "muted" }, ` (${crop.assignment_source})`) : null),
      d ? h("p", {}, `${reasons[d.reason] || d.reason}. Best: ${candidate(ctx, d.best)}; runner-up: ${candidate(ctx, d.runner_up)}.`) : null,
      h("p", { class: "muted" }, `Detection score ${crop.score.toFixed(2)} · ${Math.round(crop.quality.size || 0)} px · sharpness ${Math.round(crop.quality.blur || 0)}${crop.quality.issue ? ` · ${crop.quality.issue.replace("_", " ")}` : ""}`),
      h("p", {}, "Embeddings: ", (crop.embeddings || []).length ? crop.embeddings.map((e) => `${e.model_name} (${e.dimension}-D)`).join(", ") : "none"),
      h("div", { class: "row" },
        field("Assign to", who),
        h("button", { class: "primary", onclick: () => who.value ? act("POST", `/attendance/face-crops/${id}/assign/`, { student_id: Number(who.value) }) : showError(chooseFirst()) }, "Assign"),
        h("button", { onclick: () => act("POST", `/attendance/face-crops/${id}/not-a-student/`) }, "Not a student"),
        h("button", { onclick: () => act("POST", `/attendance/face-crops/${id}/reset/`) }, "Back to automatic"),
        h("button", { onclick: () => act("POST", `/attendance/face-crops/${id}/generate-embedding/`, { force_regenerate: true }) }, "Generate Embedding")))));
}

async function unknownSection(ctx) {
  const size = 60;
  const grid = h("div", { class: "grid" });
  const selected = new Set();
  const more = h("button", {}, "Show more");
  let pageNo = 1;
  const load = () => guard(async () => {
    const r = await api("GET", `/attendance/sessions/${ctx.session.id}/face-crops/?unassigned=true&page_size=${size}&page=${pageNo}`);
    for (const c of r.results) {
      const box = h("input", { type: "checkbox", onchange: (ev) => { ev.target.checked ? selected.add(c.id) : selected.delete(c.id); tile.classList.toggle("checked", ev.target.checked); } });
      const issue = c.quality && c.quality.issue ? QUALITY_REASONS[c.quality.issue].replace("not assigned: ", "") : "";
      const hint = [issue, c.decision && c.decision.best ? `closest: ${candidate(ctx, c.decision.best)}` : ""].filter(Boolean).join("; ");
      const tile = h("div", { class: "tile" }, authImg(`/attendance/face-crops/${c.id}/image/`, { class: "thumb", alt: `Unknown face ${c.id}` }), field(`Face ${c.id}`, box), hint ? h("span", { class: "muted" }, hint) : null);
      grid.append(tile);
    }
    more.hidden = !r.next;
    pageNo++;
  });
  more.addEventListener("click", load);
  await load();
  const who = studentSelect(ctx.students, null);
  const result = h("div", { "aria-live": "polite" });
  const each = (label, f) => h("button", {
    onclick: () => guard(async () => {
      if (!selected.size) { result.textContent = "Select faces first."; return; }
      await f([...selected]);
    }),
  }, label);
  return h("section", {}, h("h2", {}, "Unidentified faces"),
    grid.childElementCount ? grid : h("p", { class: "muted" }, "Every face is identified."), more,
    h("div", { class: "row" },
      each("Generate Embedding", async (ids) => {
        const r = await api("POST", "/attendance/face-crops/generate-embeddings-batch/", { face_crop_ids: ids, force_regenerate: true });
        result.textContent = `Embeddings: ${r.success_count} generated, ${r.skipped_count} kept, ${r.failed_count} failed.`;
      }),
      field("Assign selected to", who),
      each("Assign selected", async (ids) => {
        if (!who.value) throw chooseFirst();
        // Re-rendered even when one fails part-way, so the page shows what was done.
        try {
          for (const id of ids) await api("POST", `/attendance/face-crops/${id}/assign/`, { student_id: Number(who.value) });
        } finally { route(); }
      }),
      each("Not a student", async (ids) => {
        try {
          for (const id of ids) await api("POST", `/attendance/face-crops/${id}/not-a-student/`);
        } finally { route(); }
      })),
    result);
}

async function attendanceSection(ctx) {
  const a = await api("GET", `/attendance/sessions/${ctx.session.id}/attendance/`);
  const rows = a.students.map((s) => {
    const choice = h("select", {}, ["", "present", "absent", "unknown"].map((v) =>
      h("option", { value: v }, v ? `set ${v}` : "— override —")));
    choice.addEventListener("change", () => guard(async () => {
      if (!choice.value) return;
      await api("PUT", `/attendance/sessions/${ctx.session.id}/attendance/${s.student}/`, { status: choice.value });
      route();
    }));
    return h("tr", {},
      h("td", {}, s.name),
      h("td", { class: `status-${s.status}` }, s.status, h("div", { class: "muted" }, `${s.source}: ${s.reason}`)),
      h("td", {}, h("div", { class: "grid" }, s.evidence.slice(0, 4).map((e) => authImg(`/attendance/face-crops/${e.crop}/image/`, { class: "thumb", alt: `Evidence for ${s.name}` })))),
      h("td", {}, field(`Override for ${s.name}`, choice),
        s.source === "manual" ? h("button", { onclick: () => guard(async () => { await api("PUT", `/attendance/sessions/${ctx.session.id}/attendance/${s.student}/`, { status: null }); route(); }) }, "Clear override") : null));
  });
  return h("section", {}, h("h2", {}, "Attendance"),
    h("p", {}, `${a.present} present · ${a.absent} absent · ${a.unknown} unknown`,
      a.unresolved_faces ? h("span", { class: "muted" }, ` · ${a.unresolved_faces} faces not identified yet`) : null),
    h("div", { class: "scroll" }, h("table", { id: "attendance" },
      h("thead", {}, h("tr", {}, h("th", {}, "Student"), h("th", {}, "Status"), h("th", {}, "Evidence"), h("th", {}, "Override"))),
      h("tbody", {}, rows))),
    h("button", { onclick: () => guard(() => download(`/attendance/sessions/${ctx.session.id}/attendance/csv/`, `session-${ctx.session.id}-attendance.csv`)) }, "Download CSV"));
}
