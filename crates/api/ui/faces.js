// What the pages say and show about one face: its label, why it was (not) assigned, how certain
// the system is, the region of its photo around it, and a panel with the corrections (with undo).
import { crops, images } from "./api.js";
import { h, field, guard, toast, authImg } from "./dom.js";

export const REASONS = {
  matched: "Recognised: similar enough, and clearly ahead of the runner-up",
  below_threshold: "Not assigned: nobody enrolled is similar enough",
  ambiguous: "Not assigned: the runner-up is almost as similar",
  conflict: "Not assigned: its best match went to a likelier face in the same photo",
  no_students: "Not assigned: nobody is enrolled yet",
  too_small: "Not assigned: too small to recognise reliably",
  blurred: "Not assigned: too blurred to recognise reliably",
  profile: "Not assigned: turned too far to recognise reliably",
};

export function nameOf(ctx, id) { return ctx.names[id] || `student ${id}`; }

export function faceLabel(ctx, c) {
  if (!c) return "unknown";
  if (c.student) return nameOf(ctx, c.student);
  return c.not_a_student ? "not a student" : "unknown";
}

/** Why the face is as it is, in words. */
export function reasonOf(c) {
  if (c.assignment_source === "manual") return "Decided by hand";
  if (c.not_a_student) return "Marked as not a student";
  if (c.quality && c.quality.issue) return REASONS[c.quality.issue];
  if (!c.decision) return "Not recognised yet (the photo is not processed, or it has no face signature)";
  return REASONS[c.decision.reason] || c.decision.reason;
}

/** The student the system proposes for the face, if any. */
export function suggestionOf(c) {
  if (c.student && c.assignment_source === "auto") return c.student;
  const d = c.decision;
  // Below the threshold the closest student is only shown, never proposed: one key must not
  // label a face with someone it barely resembles.
  if (!d || !d.best || d.reason === "below_threshold" || (c.quality && c.quality.issue)) return null;
  return d.best.student;
}

/**
 * How sure the automatic decision is, 0 (not at all) upwards: a match counts its lead over the
 * runner-up on top of 1; anything else only its best similarity. Reviews show the least sure first.
 */
export function certainty(c) {
  const d = c.decision;
  if (!d || !d.best || (c.quality && c.quality.issue)) return 0;
  const lead = d.best.similarity - (d.runner_up ? d.runner_up.similarity : 0);
  return d.reason === "matched" ? 1 + lead : Math.max(0, d.best.similarity) / 2;
}

/**
 * Has a person decided about this face already? Any source but `auto` is a person's decision
 * (`manual`, or `cluster`: they named the face's group).
 */
export function decidedByHand(c) { return Boolean(c.assignment_source && c.assignment_source !== "auto") || c.not_a_student; }

export function candidateText(ctx, cand) {
  return cand ? `${nameOf(ctx, cand.student)} (similarity ${cand.similarity.toFixed(2)})` : "—";
}

/** The part of the photo's preview around a face (2.5× its box), scaled into `side` px. */
export function photoRegion(image, bbox, side = 320) {
  const [x, y, w, hgt] = bbox;
  const span = Math.max(w, hgt) * 2.5;
  const cx = x + w / 2; const cy = y + hgt / 2;
  const left = Math.max(0, Math.min(image.width - span, cx - span / 2));
  const top = Math.max(0, Math.min(image.height - span, cy - span / 2));
  const scale = side / span;
  const img = authImg(images.preview(image.id), { alt: "", class: "region-img" }, { eager: true });
  Object.assign(img.style, { width: `${image.width * scale}px`, height: `${image.height * scale}px`, left: `${-left * scale}px`, top: `${-top * scale}px` });
  const mark = h("div", { class: "region-mark" });
  Object.assign(mark.style, { left: `${(x - left) * scale}px`, top: `${(y - top) * scale}px`, width: `${w * scale}px`, height: `${hgt * scale}px` });
  const box = h("div", { class: "region", role: "img", "aria-label": "Where the face is in its photo" }, img, mark);
  Object.assign(box.style, { width: `${side}px`, height: `${side}px` });
  return box;
}

/** `el`, or its re-drawn twin in the same panel when a redraw replaced it (for toasts near it). */
export function live(el) {
  if (!el || el.isConnected || !el.dataset.key) return el;
  return document.querySelector(`#face-panel [data-key="${CSS.escape(el.dataset.key)}"]`) || el;
}

/**
 * Applies a correction (`run` → the crop after it), tells `ctx.changed`, and offers Undo, which
 * asks the server to put the face back as it was (it keeps the state before the correction).
 */
export async function correct(ctx, crop, run, message, near) {
  const after = await run();
  ctx.changed(after);
  toast(message, {
    near: live(near),
    action: { label: "Undo", run: () => guard(live(near), async () => { ctx.changed(await crops.undo(crop.id)); toast(`Face ${crop.id} is back as it was.`, { near: live(near) }); }) },
  });
  return after;
}

/** The selected face's panel: the face, why, the candidates, and the corrections. */
export function facePanel(ctx, id, { onClose } = {}) {
  const c = ctx.crops.get(id);
  const image = ctx.images.get(c.image);
  const who = h("select", { "data-key": "who" }, h("option", { value: "" }, "— choose a student —"),
    ctx.students.map((s) => h("option", { value: s.id, selected: s.id === c.student }, s.name)));
  const d = c.decision;
  const panel = h("div", { class: "face-panel-body" });
  const act = (button, run, message) => guard(button, () => correct(ctx, c, run, message, button));
  const assign = h("button", {
    type: "button", class: "primary", "data-key": "assign",
    onclick: () => {
      if (!who.value) { who.focus(); return toast("Choose a student first.", { kind: "error", near: who }); }
      return act(assign, () => crops.assign(id, Number(who.value)), `Face ${id} assigned to ${nameOf(ctx, Number(who.value))}.`);
    },
  }, "Assign");
  const notStudent = h("button", { type: "button", "data-key": "not", onclick: () => act(notStudent, () => crops.notAStudent(id), `Face ${id} marked as not a student.`) }, "Not a student");
  const auto = h("button", { type: "button", "data-key": "auto", onclick: () => act(auto, () => crops.reset(id), `Face ${id} is decided automatically again.`) }, "Back to automatic");
  const signature = h("button", {
    type: "button", "data-key": "signature",
    onclick: () => guard(signature, async () => {
      await crops.computeSignature(id);
      toast(`Face signature of face ${id} computed again.`, { near: signature });
    }),
  }, "Compute face signature");
  panel.append(
    h("div", { class: "row top" },
      h("h3", { class: "face-title" }, `Face ${id}: ${faceLabel(ctx, c)}`),
      onClose ? h("button", { type: "button", class: "small close", "aria-label": "Close the face panel", onclick: onClose }, "Close") : null),
    h("div", { class: "face-pics" },
      authImg(crops.image(id), { class: "crop", alt: `Face ${id}` }, { eager: true }),
      image ? photoRegion(image, c.bbox, 150) : null),
    h("p", {}, reasonOf(c), c.assignment_source ? h("span", { class: "muted" }, ` (${c.assignment_source})`) : null),
    d ? h("p", {}, `Best: ${candidateText(ctx, d.best)}; runner-up: ${candidateText(ctx, d.runner_up)}.`) : null,
    h("p", { class: "muted" }, `Detection score ${c.score.toFixed(2)} · ${Math.round(c.quality.size || 0)} px · sharpness ${Math.round(c.quality.blur || 0)}`),
    h("div", { class: "row" }, field("Assign to", who), assign),
    h("div", { class: "row" }, notStudent, auto, signature));
  return panel;
}
