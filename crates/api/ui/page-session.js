// A session: upload, processing, its photos with the faces boxed (a lightbox to zoom, the
// selected face's panel beside the photo or as a drawer), unidentified faces and attendance.
// After an action only the parts it changes are drawn again.
import { sessions, courses, students, images, jobs, crops, userError } from "./api.js";
import { h, field, guard, toast, component, authImg, confirmDialog, deleteWithUndo, plural, forgetImages, swap } from "./dom.js";
import { facePanel, faceLabel, decidedByHand } from "./faces.js";

export async function sessionPage(main, id) {
  const session = await sessions.get(id);
  const [course, roster, imgs, cropList] = await Promise.all([
    courses.get(session.course), students.list(session.course), sessions.images(id), sessions.crops(id)]);
  const ctx = {
    session, course, students: roster,
    names: Object.fromEntries(roster.map((s) => [s.id, s.name])),
    images: new Map(imgs.map((i) => [i.id, i])),
    crops: new Map(cropList.map((c) => [c.id, c])),
    changed: null,
  };
  document.title = `${session.title} — AttendanSee`;
  const heading = h("h1", {}, session.title);
  const photos = photosSection(ctx);
  const unknown = unknownSection(ctx);
  const attendance = attendanceSection(ctx);
  const review = component("p", { class: "review-link" }, () => reviewLink(ctx));
  ctx.reloadFaces = async () => {
    const [i, c] = await Promise.all([sessions.images(id), sessions.crops(id)]);
    ctx.images = new Map(i.map((x) => [x.id, x]));
    ctx.crops = new Map(c.map((x) => [x.id, x]));
    await Promise.all([photos.refresh(), unknown.refresh(), attendance.refresh(), review.refresh()]);
  };
  // One face changed: its box, the panel, the unknown faces, attendance and the review count.
  ctx.changed = (crop) => {
    ctx.crops.set(crop.id, crop);
    photos.updateFace(crop.id);
    unknown.refresh();
    attendance.refresh();
    review.refresh();
  };
  main.replaceChildren(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "Courses"), " › ",
      h("a", { href: `#/courses/${course.id}` }, `${course.code} — ${course.name}`)),
    heading,
    h("p", { class: "muted" }, `Held on ${session.held_at.slice(0, 10)}`),
    sessionActions(ctx, heading),
    review.root,
    h("div", { class: "two" }, uploadSection(ctx), processSection(ctx)),
    photos.root, unknown.root, attendance.root);
  return () => photos.close();
}

function reviewLink(ctx) {
  const todo = [...ctx.crops.values()].filter((c) => !decidedByHand(c)).length;
  if (!ctx.crops.size) return [];
  return [h("a", { class: "button primary", href: `#/sessions/${ctx.session.id}/review` }, `Review faces one by one (${todo} to review)`),
    h("span", { class: "muted" }, " — keys: Enter accept, N not a student, S skip, Z undo")];
}

function sessionActions(ctx, heading) {
  const { session } = ctx;
  const title = h("input", { value: session.title, required: true });
  const save = h("button", { type: "submit" }, "Save");
  const form = h("form", {
    class: "row", hidden: true,
    onsubmit: (ev) => {
      ev.preventDefault();
      guard(save, async () => {
        const s = await sessions.update(session.id, { title: title.value });
        session.title = s.title; heading.textContent = s.title;
        form.hidden = true; edit.focus();
        toast("Session saved.", { near: edit });
      });
    },
  }, field("Session title", title), save);
  const edit = h("button", { type: "button", onclick: () => { form.hidden = !form.hidden; if (!form.hidden) title.focus(); } }, "Rename session");
  const del = h("button", {
    type: "button", class: "danger",
    onclick: () => guard(del, async () => {
      if (!await confirmDialog(`Delete the session ${session.title} with its photos and faces? This cannot be undone.`)) return;
      await sessions.remove(session.id);
      toast(`Session ${session.title} deleted.`);
      location.hash = `#/courses/${session.course}`;
    }),
  }, "Delete session");
  return h("div", { class: "page-actions" }, h("div", { class: "row" }, edit, del), form);
}

// ---------- upload and processing ----------

function uploadSection(ctx) {
  const files = h("input", { type: "file", accept: "image/*,.heic,.heif", multiple: true });
  const bar = h("progress", { max: 1, value: 0, hidden: true });
  const status = h("div", { "aria-live": "polite" });
  const upload = h("button", {
    type: "button", class: "primary",
    onclick: () => guard(upload, async () => {
      if (!files.files.length) throw userError("choose photos first");
      bar.hidden = false; bar.value = 0; upload.disabled = true;
      try {
        const body = await sessions.upload(ctx.session.id, [...files.files], (f) => { bar.value = f; });
        bar.value = 1;
        status.replaceChildren(h("p", {}, `${body.stored} stored, ${body.duplicates} duplicate, ${body.failed} failed`),
          h("ul", { class: "plain" }, body.results.filter((r) => r.status === "error")
            .map((r) => h("li", { class: "bad" }, `${r.file}: ${r.error_type}: ${r.error}`))));
        files.value = "";
        await ctx.reloadFaces();
      } finally { upload.disabled = false; }
    }),
  }, "Upload");
  return h("section", { "aria-labelledby": "upload-h" }, h("h2", { id: "upload-h" }, "Upload photos"),
    h("div", { class: "row" }, field("Photos to upload", files), upload), bar, status);
}

function processSection(ctx) {
  const bar = h("progress", { max: 1, value: 0, hidden: true });
  const status = h("div", { "aria-live": "polite", id: "job-status" });
  const button = h("button", {
    type: "button", class: "primary",
    onclick: () => guard(button, async () => {
      button.disabled = true;
      try {
        const { job } = await sessions.process(ctx.session.id);
        let current = job;
        if (!current.total && ["succeeded", "partial"].includes(current.status)) {
          status.replaceChildren(h("p", { class: "ok" }, "Every photo is processed already; upload more photos to process them."));
          return;
        }
        bar.hidden = false;
        while (!["succeeded", "partial", "failed", "cancelled"].includes(current.status)) {
          bar.max = Math.max(current.total, 1); bar.value = current.done;
          status.textContent = current.total ? `Processing: ${current.done} of ${plural(current.total, "photo")}` : "Processing: starting…";
          await new Promise((r) => setTimeout(r, 400));
          current = await jobs.get(job.id);
        }
        bar.max = Math.max(current.total, 1); bar.value = current.done;
        const a = current.stats.assignment;
        const text = !current.total ? "Every photo is processed already; upload more photos to process them."
          : `Processing ${current.status}: ${current.done} of ${plural(current.total, "photo")}, ${plural(current.stats.faces, "face")}` +
            (a ? `, ${a.matched} recognised` : "") + (current.error ? ` — ${current.error}` : "");
        status.replaceChildren(
          h("p", { class: current.status === "succeeded" && !current.errors.length ? "ok" : "bad" }, text),
          h("ul", { class: "plain" }, current.errors.map((e) => h("li", { class: "bad" }, `${e.error_type}: ${e.file || `photo ${e.image}`}: ${e.error}`))));
        await ctx.reloadFaces();
      } finally { button.disabled = false; }
    }),
  }, "Process photos");
  const again = h("button", {
    type: "button",
    onclick: () => guard(again, async () => {
      const r = await sessions.assignAgain(ctx.session.id);
      status.replaceChildren(h("p", { class: "ok" }, `Recognised again: ${r.assignment.matched} of ${r.assignment.faces} faces matched automatically.`));
      await ctx.reloadFaces();
    }),
  }, "Recognise again");
  return h("section", { "aria-labelledby": "process-h" }, h("h2", { id: "process-h" }, "Find faces"),
    h("p", { class: "muted" }, "Finds and recognises the faces of every photo not processed yet. Recognise again after enrolling more students; decisions made by hand are kept."),
    h("div", { class: "row" }, button, again), bar, status);
}

// ---------- photos, boxes, lightbox and the face panel ----------

function photosSection(ctx) {
  let selected = null;
  const aside = h("aside", { class: "face-panel", id: "face-panel", "aria-label": "Selected face", hidden: true });
  const grid = h("div", { class: "photos" });
  const boxes = new Map();
  const closePanel = () => {
    const id = selected; selected = null;
    aside.hidden = true; aside.replaceChildren();
    document.querySelectorAll(".face-box.selected").forEach((b) => b.classList.remove("selected"));
    const box = id && grid.querySelector(`.face-box[data-face="${id}"]`);
    if (box) box.focus();
  };
  // Selecting moves focus to the panel's heading (screen readers read the face); refreshing
  // the selection after a change leaves focus where it is.
  const select = (id, { focus = true } = {}) => {
    selected = id;
    document.querySelectorAll(".face-box.selected").forEach((b) => b.classList.remove("selected"));
    document.querySelectorAll(`.face-box[data-face="${id}"]`).forEach((b) => b.classList.add("selected"));
    aside.hidden = false;
    swap(aside, facePanel(ctx, id, { onClose: closePanel }));
    const r = aside.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) aside.scrollIntoView({ block: "nearest" });
    const title = focus && aside.querySelector(".face-title");
    if (title) { title.setAttribute("tabindex", "-1"); title.focus({ preventScroll: true }); }
  };
  // Escape closes the panel (the drawer on a phone) and returns to the face's box.
  aside.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && selected !== null && !ev.defaultPrevented) { ev.preventDefault(); closePanel(); }
  });
  const box = (img, f) => {
    const c = ctx.crops.get(f.id);
    const [x, y, w, hgt] = f.bbox;
    const label = faceLabel(ctx, c);
    const b = h("button", {
      type: "button",
      class: `face-box ${c && c.student ? "assigned" : c && c.not_a_student ? "ignored" : "unknown"}${selected === f.id ? " selected" : ""}`,
      style: { left: `${(100 * x) / img.width}%`, top: `${(100 * y) / img.height}%`, width: `${(100 * w) / img.width}%`, height: `${(100 * hgt) / img.height}%` },
      "aria-label": `Face ${f.id}: ${label}`, "data-face": f.id,
      onclick: () => select(f.id),
    }, h("span", { class: "face-label", "aria-hidden": "true" }, label));
    return b;
  };
  const figure = (img) => {
    const faces = img.faces || [];
    const frame = h("div", { class: "frame" },
      authImg(images.preview(img.id), { alt: img.original_name || `Photo ${img.id}`, width: img.width, height: img.height }),
      faces.map((f) => box(img, f)));
    return h("figure", { class: "photo", "data-image": img.id },
      frame,
      h("figcaption", {},
        h("span", {}, `${img.original_name || `Photo ${img.id}`} · ${img.status}${img.error ? ` · ${img.error}` : ""} · ${plural(faces.length, "face")}`),
        h("span", { class: "row" },
          h("button", { type: "button", class: "small", onclick: () => lightbox(ctx, img, select) }, "Enlarge"),
          h("button", {
            type: "button", class: "small danger", "aria-label": `Delete photo ${img.original_name || img.id}`,
            onclick: async (ev) => {
              const near = ev.currentTarget;
              if (!await confirmDialog(`Delete the photo ${img.original_name || img.id} and its faces?`)) return;
              const fig = near.closest("figure");
              deleteWithUndo({
                message: `Photo ${img.original_name || img.id} deleted.`, near: grid,
                hide: () => { fig.hidden = true; },
                restore: () => { fig.hidden = false; },
                commit: async (keepalive) => { await images.remove(img.id, { keepalive }); forgetImages(images.preview(img.id)); if (!keepalive) await ctx.reloadFaces(); },
              });
            },
          }, "Delete"))),
      img.quality_hint ? h("p", { class: "quality-hint", role: "note" }, img.quality_hint) : null);
  };
  const root = h("section", { "aria-labelledby": "photos-h", class: "photos-section" }, h("h2", { id: "photos-h" }, "Photos"),
    h("p", { class: "muted" }, "Select a face to see and correct it; Enlarge to zoom into a photo."),
    h("div", { class: "photos-layout" }, grid, aside));
  const self = {
    root,
    async refresh() {
      const imgs = [...ctx.images.values()];
      swap(grid, imgs.length ? imgs.map(figure) : h("p", { class: "muted" }, "No photo yet."));
      if (selected && ctx.crops.has(selected)) select(selected, { focus: false }); else { aside.hidden = true; selected = null; }
    },
    updateFace(id) {
      const c = ctx.crops.get(id);
      const img = ctx.images.get(c.image);
      const f = img && (img.faces || []).find((x) => x.id === id);
      for (const old of document.querySelectorAll(`.face-box[data-face="${id}"]`)) {
        const fresh = box(img, f);
        const focused = document.activeElement === old;
        old.replaceWith(fresh);
        if (focused) fresh.focus();
      }
      if (selected === id) {
        const active = document.activeElement;
        const key = active && aside.contains(active) ? active.dataset.key : null;
        aside.replaceChildren(facePanel(ctx, id, { onClose: closePanel }));
        const again = key && aside.querySelector(`[data-key="${key}"]`);
        if (again) again.focus();
      }
    },
    close() { document.querySelectorAll("dialog.lightbox").forEach((d) => d.remove()); },
  };
  self.refresh();
  return self;
}

/** A photo enlarged: zoom (buttons, +/−, wheel) and pan (drag, arrow keys) with its boxes. */
function lightbox(ctx, img, select) {
  const opener = document.activeElement;
  let zoom = 1; let panX = 0; let panY = 0;
  const stage = h("div", { class: "lb-stage" },
    authImg(images.preview(img.id), { alt: img.original_name || `Photo ${img.id}` }, { eager: true }),
    (img.faces || []).map((f) => {
      const c = ctx.crops.get(f.id);
      const [x, y, w, hgt] = f.bbox;
      return h("button", {
        type: "button", class: `face-box ${c && c.student ? "assigned" : c && c.not_a_student ? "ignored" : "unknown"}`,
        style: { left: `${(100 * x) / img.width}%`, top: `${(100 * y) / img.height}%`, width: `${(100 * w) / img.width}%`, height: `${(100 * hgt) / img.height}%` },
        "aria-label": `Face ${f.id}: ${faceLabel(ctx, c)}`, "data-face": f.id,
        onclick: () => { close(); select(f.id); },
      }, h("span", { class: "face-label", "aria-hidden": "true" }, faceLabel(ctx, c)));
    }));
  // The stage is the photo fitted into the viewport (whole, portrait or landscape); zoom scales
  // it from there (1 = fit), and the pan keeps it covering the viewport (centred when smaller).
  let baseW = 0; let baseH = 0;
  const layout = () => {
    const fit = Math.min(viewport.clientWidth / img.width, viewport.clientHeight / img.height);
    baseW = img.width * fit; baseH = img.height * fit;
    Object.assign(stage.style, { width: `${baseW}px`, height: `${baseH}px` });
  };
  const clamp = (pan, size, room) => (size <= room ? (room - size) / 2 : Math.min(0, Math.max(room - size, pan)));
  const apply = () => {
    panX = clamp(panX, baseW * zoom, viewport.clientWidth);
    panY = clamp(panY, baseH * zoom, viewport.clientHeight);
    stage.style.transform = `translate(${panX}px, ${panY}px) scale(${zoom})`;
  };
  // Zooms keeping the point (px, py) of the viewport where it is: under the pointer for the wheel.
  const zoomAt = (k, px, py) => {
    const next = Math.min(8, Math.max(1, zoom * k));
    panX = px - ((px - panX) * next) / zoom; panY = py - ((py - panY) * next) / zoom;
    zoom = next; apply();
  };
  const by = (k) => zoomAt(k, viewport.clientWidth / 2, viewport.clientHeight / 2);
  const viewport = h("div", { class: "lb-viewport", tabindex: "0", "aria-label": "Photo; + and − zoom, arrow keys move" }, stage);
  viewport.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = viewport.getBoundingClientRect();
    zoomAt(ev.deltaY < 0 ? 1.2 : 1 / 1.2, ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });
  let drag = null;
  viewport.addEventListener("pointerdown", (ev) => { if (ev.target.closest(".face-box")) return; drag = { x: ev.clientX - panX, y: ev.clientY - panY }; viewport.setPointerCapture(ev.pointerId); });
  viewport.addEventListener("pointermove", (ev) => { if (drag) { panX = ev.clientX - drag.x; panY = ev.clientY - drag.y; apply(); } });
  viewport.addEventListener("pointerup", () => { drag = null; });
  viewport.addEventListener("keydown", (ev) => {
    const step = 60;
    const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (moves[ev.key]) { panX += moves[ev.key][0]; panY += moves[ev.key][1]; apply(); ev.preventDefault(); }
    if (ev.key === "+" || ev.key === "=") by(1.5);
    if (ev.key === "-") by(1 / 1.5);
  });
  const dialog = h("dialog", { class: "lightbox", "aria-label": `Photo ${img.original_name || img.id}` },
    h("div", { class: "row lb-bar" },
      h("strong", {}, img.original_name || `Photo ${img.id}`),
      h("button", { type: "button", onclick: () => by(1.5), "aria-label": "Zoom in" }, "+"),
      h("button", { type: "button", onclick: () => by(1 / 1.5), "aria-label": "Zoom out" }, "−"),
      h("button", { type: "button", onclick: () => { zoom = 1; layout(); apply(); } }, "Fit"),
      h("button", { type: "button", class: "close", onclick: () => close() }, "Close")),
    viewport);
  const close = () => { dialog.close(); dialog.remove(); if (opener && opener.isConnected) opener.focus(); };
  dialog.addEventListener("cancel", (ev) => { ev.preventDefault(); close(); });
  document.body.append(dialog);
  dialog.showModal();
  layout(); apply();
  const onResize = () => { if (dialog.isConnected) { layout(); apply(); } else window.removeEventListener("resize", onResize); };
  window.addEventListener("resize", onResize);
  viewport.focus();
}

// ---------- unidentified faces ----------

function unknownSection(ctx) {
  const selected = new Set();
  let lastClicked = null;
  return component("section", { "aria-labelledby": "unknown-h" }, (self) => {
    const list = [...ctx.crops.values()].filter((c) => !c.student && !c.not_a_student);
    for (const id of [...selected]) if (!list.some((c) => c.id === id)) selected.delete(id);
    const processed = [...ctx.images.values()].filter((i) => i.status === "processed").length;
    const unprocessed = [...ctx.images.values()].length - processed;
    const boxes = [];
    const tiles = list.map((c, i) => {
      const box = h("input", { type: "checkbox", checked: selected.has(c.id), "data-key": `pick-${c.id}` });
      boxes.push(box);
      box.addEventListener("click", (ev) => {
        // Shift-click selects the whole range since the last click.
        if (ev.shiftKey && lastClicked !== null) {
          const [a, b] = [Math.min(lastClicked, i), Math.max(lastClicked, i)];
          for (let k = a; k <= b; k++) { boxes[k].checked = box.checked; toggle(list[k].id, box.checked); }
        } else toggle(c.id, box.checked);
        lastClicked = i;
        count.textContent = `${selected.size} selected`;
      });
      const tile = h("div", { class: `tile${selected.has(c.id) ? " checked" : ""}`, "data-crop": c.id },
        authImg(crops.image(c.id), { class: "thumb", alt: `Unknown face ${c.id}` }), field(`Face ${c.id}`, box));
      return tile;
    });
    const toggle = (id, on) => {
      on ? selected.add(id) : selected.delete(id);
      const t = self.root.querySelector(`.tile[data-crop="${id}"]`);
      if (t) t.classList.toggle("checked", on);
    };
    const count = h("span", { class: "muted", "aria-live": "polite" }, `${selected.size} selected`);
    const all = h("button", {
      type: "button", class: "small", "data-key": "all",
      onclick: () => { const on = selected.size < list.length; list.forEach((c, k) => { boxes[k].checked = on; toggle(c.id, on); }); count.textContent = `${selected.size} selected`; },
    }, "Select all / none");
    const who = h("select", { "data-key": "who-many" }, h("option", { value: "" }, "— choose a student —"), ctx.students.map((s) => h("option", { value: s.id }, s.name)));
    const many = (button, label, run) => guard(button, async () => {
      if (!selected.size) throw userError("select faces first");
      const ids = [...selected];
      let done = 0;
      try { for (const id of ids) { ctx.crops.set(id, await run(id)); done++; } } finally {
        selected.clear();
        for (const id of ids) ctx.changed(ctx.crops.get(id));
      }
      const changed = ids.slice(0, done);
      toast(`${plural(done, "face")} ${label}.`, {
        near: button,
        action: {
          label: "Undo", run: () => guard(button, async () => {
            for (const id of changed) ctx.changed(await crops.undo(id));
            toast(`${plural(changed.length, "face")} back as they were.`, { near: button });
          }),
        },
      });
    });
    const assignMany = h("button", { type: "button", "data-key": "assign-many", onclick: () => { if (!who.value) { toast("Choose a student first.", { kind: "error", near: who }); return; } many(assignMany, `assigned to ${ctx.names[who.value]}`, (id) => crops.assign(id, Number(who.value))); } }, "Assign selected");
    const notMany = h("button", { type: "button", "data-key": "not-many", onclick: () => many(notMany, "marked as not a student", (id) => crops.notAStudent(id)) }, "Not a student");
    const sig = h("button", {
      type: "button", "data-key": "sig-many",
      onclick: () => guard(sig, async () => {
        if (!selected.size) throw userError("select faces first");
        const r = await crops.computeSignatures([...selected]);
        toast(`Face signatures: ${r.success_count} computed, ${r.skipped_count} kept, ${r.failed_count} failed.`, { near: sig, kind: r.failed_count ? "error" : "ok" });
      }),
    }, "Compute face signature");
    let empty;
    if (!ctx.images.size) empty = "No photo yet.";
    else if (unprocessed) empty = `${plural(unprocessed, "photo")} not processed yet: process them to find the faces.`;
    else empty = "Every face is identified.";
    // Grouped by photo, each group with its own select button.
    const byPhoto = new Map();
    list.forEach((c, k) => { if (!byPhoto.has(c.image)) byPhoto.set(c.image, []); byPhoto.get(c.image).push(k); });
    const groups = [...byPhoto].map(([imageId, ks]) => {
      const img = ctx.images.get(imageId);
      const name = img ? img.original_name || `photo ${imageId}` : "another photo";
      return h("div", { class: "tile-group" },
        h("div", { class: "row" }, h("strong", {}, name),
          h("button", {
            type: "button", class: "small", "data-key": `photo-${imageId}`,
            onclick: () => { const on = !ks.every((k) => boxes[k].checked); for (const k of ks) { boxes[k].checked = on; toggle(list[k].id, on); } count.textContent = `${selected.size} selected`; },
          }, `Select the ${plural(ks.length, "face")} of ${name}`)),
        h("div", { class: "grid" }, ks.map((k) => tiles[k])));
    });
    return [h("h2", { id: "unknown-h" }, `Unidentified faces (${list.length})`),
      list.length ? [h("div", { class: "row" }, all, count), groups,
        h("div", { class: "row" }, field("Assign selected to", who), assignMany, notMany, sig)]
        : h("p", { class: "muted" }, empty),
      list.length && unprocessed ? h("p", { class: "muted" }, `${plural(unprocessed, "photo")} not processed yet.`) : null];
  });
}

// ---------- attendance ----------

function attendanceSection(ctx) {
  return component("section", { "aria-labelledby": "attendance-h" }, async (self) => {
    const a = await sessions.attendance(ctx.session.id);
    const rows = a.students.map((s) => {
      const choice = h("select", { "data-key": `override-${s.student}` }, ["", "present", "absent", "unknown"].map((v) =>
        h("option", { value: v }, v ? `set ${v}` : "— override —")));
      choice.addEventListener("change", () => guard(choice, async () => {
        if (!choice.value) return;
        await sessions.setAttendance(ctx.session.id, s.student, choice.value);
        await self.refresh();
        toast(`${s.name} set ${choice.value}.`, { near: self.root.querySelector(`[data-key="override-${s.student}"]`) });
      }));
      return h("tr", {},
        h("th", { scope: "row" }, s.name),
        h("td", { class: `status-${s.status}` }, s.status, h("div", { class: "muted" }, `${s.source}: ${s.reason}`)),
        h("td", {}, h("div", { class: "grid" }, s.evidence.slice(0, 4).map((e) => authImg(crops.image(e.crop), { class: "thumb small", alt: `Evidence for ${s.name}` })))),
        h("td", {}, field(`Override for ${s.name}`, choice),
          s.source === "manual" ? h("button", {
            type: "button", class: "small", "data-key": `clear-${s.student}`,
            onclick: (ev) => guard(ev.currentTarget, async () => { await sessions.setAttendance(ctx.session.id, s.student, null); await self.refresh(); }),
          }, "Clear override") : null));
    });
    return [h("h2", { id: "attendance-h" }, "Attendance"),
      h("p", {}, `${a.present} present · ${a.absent} absent · ${a.unknown} unknown`,
        a.unresolved_faces ? h("span", { class: "muted" }, ` · ${plural(a.unresolved_faces, "face")} not identified yet`) : null),
      h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Attendance table" }, h("table", { id: "attendance" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Student"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Evidence"), h("th", { scope: "col" }, "Override"))),
        h("tbody", {}, rows))),
      h("button", { type: "button", onclick: (ev) => guard(ev.currentTarget, () => sessions.attendanceCsv(ctx.session.id)) }, "Download CSV")];
  });
}
