// Review mode: a session's faces one at a time, least certain first, large and beside the part of
// the photo around them, with the keyboard: Enter/A accept the suggestion, P (or /) pick another
// student by typing, N not a student, S/→ skip, ← back, Z/Ctrl+Z undo. Decisions are shown at
// once and sent to the server in order behind the scenes; a failure puts the face back and says so.
import { sessions, courses, students, crops, images } from "./api.js";
import { h, toast, authImg, imageUrl, showError } from "./dom.js";
import { certainty, decidedByHand, suggestionOf, reasonOf, candidateText, nameOf, photoRegion, faceLabel } from "./faces.js";

export async function reviewPage(main, id) {
  const started = performance.now();
  const [session, imgs, cropList] = await Promise.all([sessions.get(id), sessions.images(id), sessions.crops(id)]);
  const [course, studentList] = await Promise.all([courses.get(session.course), students.list(session.course)]);
  const ctx = {
    session, course, students: studentList,
    names: Object.fromEntries(studentList.map((s) => [s.id, s.name])),
    images: new Map(imgs.map((i) => [i.id, i])),
    crops: new Map(cropList.map((c) => [c.id, c])),
  };
  const queue = cropList.filter((c) => !decidedByHand(c)).sort((a, b) => certainty(a) - certainty(b) || a.id - b.id).map((c) => c.id);
  let index = 0;
  const history = [];
  const timings = { firstPaintMs: null, actions: [] };
  window.__review = timings;
  document.title = `Review ${session.title} — AttendanSee`;

  const progress = h("p", { class: "review-progress", "aria-live": "polite" });
  const stage = h("div", { class: "review-stage" });
  const picker = h("input", { type: "search", autocomplete: "off", "aria-label": "Pick another student (type a name, Enter to assign)", placeholder: "Type a name…", role: "combobox", "aria-expanded": "false", "aria-controls": "pick-list", "aria-autocomplete": "list" });
  const pickList = h("ul", { id: "pick-list", role: "listbox", class: "pick-list", "aria-label": "Matching students" });
  let matches = [];
  let active = 0;
  const drawMatches = () => {
    const q = picker.value.trim().toLowerCase();
    matches = q ? ctx.students.filter((s) => s.name.toLowerCase().includes(q) || (s.external_id || "").toLowerCase().includes(q)).slice(0, 8) : [];
    active = Math.min(active, Math.max(0, matches.length - 1));
    pickList.replaceChildren(...matches.map((s, i) => h("li", {
      role: "option", id: `pick-${s.id}`, "aria-selected": String(i === active), class: i === active ? "active" : "",
      onmousedown: (ev) => { ev.preventDefault(); decide({ student: s.id }); },
    }, s.name)));
    picker.setAttribute("aria-expanded", String(matches.length > 0));
    if (matches[active]) picker.setAttribute("aria-activedescendant", `pick-${matches[active].id}`); else picker.removeAttribute("aria-activedescendant");
  };
  picker.addEventListener("input", () => { active = 0; drawMatches(); });
  picker.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown") { active = Math.min(active + 1, matches.length - 1); drawMatches(); ev.preventDefault(); }
    else if (ev.key === "ArrowUp") { active = Math.max(active - 1, 0); drawMatches(); ev.preventDefault(); }
    else if (ev.key === "Enter") { ev.preventDefault(); if (matches[active]) decide({ student: matches[active].id }); }
    else if (ev.key === "Escape") { picker.value = ""; drawMatches(); stage.focus(); }
    ev.stopPropagation();
  });

  // The server sees decisions in the order they were made. Answers can arrive after a newer
  // decision about the same face (decide, then undo at once): only the answer to the latest
  // request about a face is applied. A failure drops that decision from the history and goes
  // back to its face.
  let outbox = Promise.resolve();
  let sequence = 0;
  const latest = new Map();
  const send = (entry, request) => {
    const seq = ++sequence;
    const { faceId } = entry;
    latest.set(faceId, seq);
    outbox = outbox.then(request).then((crop) => {
      if (latest.get(faceId) === seq) { ctx.crops.set(crop.id, crop); progress.textContent = progressText(); }
    }).catch((e) => {
      const at = history.indexOf(entry);
      if (at >= 0) history.splice(at, 1);
      if (latest.get(faceId) === seq) ctx.crops.set(faceId, entry.before);
      showError(e, stage);
      const back = queue.indexOf(faceId);
      if (back >= 0) index = back;
      announce = `Face ${faceId} was not saved; it is shown again.`;
      draw();
    });
    return outbox;
  };
  const decide = (choice, t0 = performance.now()) => {
    const faceId = queue[index];
    if (faceId === undefined) return;
    const c = ctx.crops.get(faceId);
    let request;
    if (choice.notAStudent) {
      ctx.crops.set(faceId, { ...c, student: null, not_a_student: true, assignment_source: "manual" });
      request = () => crops.notAStudent(faceId);
    } else {
      ctx.crops.set(faceId, { ...c, student: choice.student, not_a_student: false, assignment_source: "manual" });
      request = () => crops.assign(faceId, choice.student);
    }
    const entry = { faceId, before: c, index };
    history.push(entry);
    send(entry, request);
    // Back to the face: the next key is a review key again, not a letter of a name.
    if (document.activeElement === picker) stage.focus({ preventScroll: true });
    picker.value = ""; drawMatches();
    move(index + 1, t0, choice.notAStudent ? `Face ${faceId}: not a student.` : `Face ${faceId}: ${nameOf(ctx, choice.student)}.`);
  };
  const undo = (t0) => {
    const last = history.pop();
    if (!last) { toast("Nothing to undo.", { near: stage }); return; }
    const decided = ctx.crops.get(last.faceId);
    ctx.crops.set(last.faceId, last.before);
    // The server keeps the face's state before the decision and puts it back.
    send({ faceId: last.faceId, before: decided, index: last.index }, () => crops.undo(last.faceId));
    move(last.index, t0, `Undone: face ${last.faceId} is back as it was.`);
  };
  let announce = "";
  const move = (to, t0, said = "") => {
    index = Math.max(0, Math.min(queue.length, to));
    announce = said;
    draw();
    timings.actions.push(performance.now() - t0);
  };

  const onKey = (ev) => {
    const target = ev.target;
    if (target === picker || ev.altKey || ev.metaKey) return;
    // Letters typed in any field (a toast's, a dialog's, another page's) are text, not decisions.
    if (target.isContentEditable) return;
    if (target.closest && target.closest("dialog, input, select, textarea, [contenteditable]:not([contenteditable=false])")) return;
    const t0 = performance.now();
    const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    if (ev.ctrlKey && key !== "z") return;
    const onButton = ev.target.tagName === "BUTTON" || ev.target.tagName === "A";
    if ((key === "Enter" && !onButton) || key === "a") { ev.preventDefault(); accept(t0); }
    else if (key === "n") { ev.preventDefault(); decide({ notAStudent: true }, t0); }
    else if (key === "s" || key === "ArrowRight") { ev.preventDefault(); move(index + 1, t0); }
    else if (key === "ArrowLeft") { ev.preventDefault(); move(index - 1, t0); }
    else if (key === "z") { ev.preventDefault(); undo(t0); }
    else if (key === "p" || key === "/") { ev.preventDefault(); picker.focus(); }
  };
  const accept = (t0) => {
    const c = ctx.crops.get(queue[index]);
    if (!c) return;
    const s = suggestionOf(c);
    if (!s) { toast("No suggestion for this face: pick a student (P) or mark it not a student (N).", { kind: "error", near: stage }); return; }
    decide({ student: s }, t0);
  };
  document.addEventListener("keydown", onKey);
  let resizing = null;
  const onResize = () => { clearTimeout(resizing); resizing = setTimeout(draw, 100); };
  window.addEventListener("resize", onResize);

  const preload = (from) => {
    for (const fid of queue.slice(from, from + 4)) {
      const c = ctx.crops.get(fid);
      imageUrl(crops.image(fid)).catch(() => {});
      if (c && c.image) imageUrl(images.preview(c.image)).catch(() => {});
    }
  };

  // The face and its region side by side, also on a phone.
  const side = () => (window.innerWidth < 700 ? Math.floor((Math.min(window.innerWidth, 700) - 84) / 2) : 280);

  const decidedCount = () => queue.filter((fid) => decidedByHand(ctx.crops.get(fid))).length;
  const progressText = () => (index >= queue.length
    ? (queue.length ? `All ${queue.length} faces seen · ${decidedCount()} decided` : "No face to review.")
    : `${index + 1} of ${queue.length} to review · ${decidedCount()} decided`);

  function draw() {
    const done = decidedCount();
    if (index >= queue.length) {
      progress.textContent = queue.length ? `All ${queue.length} faces seen · ${done} decided` : "No face to review.";
      stage.replaceChildren(h("div", { class: "review-done" },
        h("p", {}, announce),
        h("p", {}, queue.length ? "You reached the end. ← goes back; Z undoes the last decision." : "Every face of this session was decided by hand already, or none was found."),
        h("p", {}, h("a", { href: `#/sessions/${id}` }, "Back to the session and its attendance"))));
      return;
    }
    const c = ctx.crops.get(queue[index]);
    const image = ctx.images.get(c.image);
    const s = suggestionOf(c);
    const d = c.decision;
    progress.textContent = `${index + 1} of ${queue.length} to review · ${done} decided`;
    const big = authImg(crops.image(c.id), { class: "review-face", alt: `Face ${c.id}` }, { eager: true });
    Object.assign(big.style, { width: `${side()}px`, height: `${side()}px` });
    if (timings.firstPaintMs === null) {
      big.addEventListener("load", () => { if (timings.firstPaintMs === null) timings.firstPaintMs = performance.now() - started; }, { once: true });
    }
    stage.replaceChildren(
      h("div", { class: "review-pics" }, big, image ? photoRegion(image, c.bbox, side()) : null),
      h("div", { class: "review-info" },
        h("p", { class: "sr-status", role: "status" }, announce),
        h("h2", { class: "review-now", id: "review-now" }, `Face ${c.id}: now ${faceLabel(ctx, c)}`),
        h("p", { class: "suggestion" }, s ? ["Suggestion: ", h("strong", {}, nameOf(ctx, s)), d && d.best && d.best.student === s ? ` (similarity ${d.best.similarity.toFixed(2)})` : ""]
          : ["No suggestion", d && d.best ? h("span", { class: "muted" }, ` — closest: ${candidateText(ctx, d.best)}, too different to propose`) : ""]),
        h("p", {}, `Runner-up: ${d ? candidateText(ctx, d.runner_up) : "—"}`),
        h("p", { class: "reason" }, reasonOf(c)),
        h("div", { class: "row keys" },
          h("button", { type: "button", class: "primary", disabled: !s, onclick: () => accept(performance.now()) }, h("kbd", {}, "Enter"), " Accept"),
          h("button", { type: "button", onclick: () => picker.focus() }, h("kbd", {}, "P"), " Pick another"),
          h("button", { type: "button", onclick: () => decide({ notAStudent: true }) }, h("kbd", {}, "N"), " Not a student"),
          h("button", { type: "button", onclick: () => move(index - 1, performance.now()) }, h("kbd", {}, "←"), " Back"),
          h("button", { type: "button", onclick: () => move(index + 1, performance.now()) }, h("kbd", {}, "S"), " Skip"),
          h("button", { type: "button", onclick: () => undo(performance.now()) }, h("kbd", {}, "Z"), " Undo"))));
    preload(index + 1);
  }

  stage.setAttribute("tabindex", "-1");
  main.replaceChildren(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "Courses"), " › ",
      h("a", { href: `#/courses/${course.id}` }, course.code), " › ", h("a", { href: `#/sessions/${id}` }, session.title)),
    h("h1", {}, `Review: ${session.title}`),
    progress,
    h("section", { class: "review", "aria-labelledby": "review-now" }, stage,
      h("div", { class: "picker" }, h("label", { for: "picker-input", class: "muted" }, "Pick another student (P)"), picker, pickList)),
    h("p", { class: "muted" }, "Keys: Enter or A accept · P or / pick another · N not a student · S or → skip · ← back · Z undo"));
  picker.id = "picker-input";
  draw();
  return () => { document.removeEventListener("keydown", onKey); window.removeEventListener("resize", onResize); };
}
