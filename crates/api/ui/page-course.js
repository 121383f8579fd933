// A course: its roster (students as cards), sessions, groups of unknown faces and the attendance
// matrix. Each section is a component that re-renders only itself after an action.
import { courses, students, sessions, clusters, crops, plainError, userError, ApiError } from "./api.js";
import { h, field, guard, toast, component, authImg, confirmDialog, deleteWithUndo, plural } from "./dom.js";

export async function coursePage(main, id) {
  const course = await courses.get(id);
  const ctx = { course, students: await students.list(id), matrix: null };
  document.title = `${course.code} — ${course.name} — AttendanSee`;
  const heading = h("h1", {}, `${course.code} — ${course.name}`);
  const roster = rosterSection(ctx);
  const groups = clustersSection(ctx, roster);
  ctx.refreshGroups = () => groups.refresh();
  const matrix = matrixSection(ctx);
  // Attendance changed (a group named, a student added or deleted): the matrix and the rates on
  // the cards are drawn again, without fetching every card's reference photos again.
  ctx.refreshMatrix = async () => {
    await matrix.refresh();
    for (const el of roster.root.querySelectorAll(".rate[data-student]")) el.textContent = rateText(ctx, Number(el.dataset.student));
  };
  main.replaceChildren(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "Courses")),
    heading,
    courseActions(course, heading),
    roster.root,
    sessionsSection(course).root,
    groups.root,
    matrix.root);
  await roster.ready;
}

function courseActions(course, heading) {
  const name = h("input", { value: course.name, required: true });
  const code = h("input", { value: course.code, required: true });
  const save = h("button", { type: "submit" }, "Save");
  const form = h("form", {
    class: "row", hidden: true,
    onsubmit: (ev) => {
      ev.preventDefault();
      guard(save, async () => {
        const c = await courses.update(course.id, { name: name.value, code: code.value });
        Object.assign(course, c);
        heading.textContent = `${c.code} — ${c.name}`;
        form.hidden = true; edit.focus();
        toast("Course saved.", { near: edit });
      });
    },
  }, field("Course name", name), field("Code", code), save);
  const edit = h("button", { type: "button", onclick: () => { form.hidden = !form.hidden; if (!form.hidden) name.focus(); } }, "Edit course");
  const del = h("button", {
    type: "button", class: "danger",
    onclick: () => guard(del, async () => {
      if (!await confirmDialog(`Delete the course ${course.code} with all its students, sessions and photos? This cannot be undone.`)) return;
      await courses.remove(course.id);
      toast(`Course ${course.code} deleted.`);
      location.hash = "#/";
    }),
  }, "Delete course");
  return h("div", { class: "page-actions" }, h("div", { class: "row" }, edit, del), form);
}

// ---------- roster ----------

function rosterSection(ctx) {
  const { course } = ctx;
  const search = h("input", { type: "search", "data-key": "search", placeholder: "Name or number" });
  const cards = h("div", { class: "cards roster" });
  const filter = () => {
    const q = search.value.trim().toLowerCase();
    for (const card of cards.children) card.hidden = q && !card.dataset.search.includes(q);
  };
  search.addEventListener("input", filter);
  const name = h("input", { required: true });
  const external = h("input", {});
  const addButton = h("button", { type: "submit" }, "Add student");
  const add = h("form", {
    class: "row",
    onsubmit: (ev) => {
      ev.preventDefault();
      guard(addButton, async () => {
        const s = await students.create({ course: course.id, name: name.value, external_id: external.value || null });
        ctx.students.push(s);
        self.add(s);
        name.value = ""; external.value = "";
        name.focus();
        toast(`${s.name} added. Add reference photos on the card.`, { near: addButton });
        ctx.refreshMatrix();
      });
    },
  }, field("Student name", name), field("Student number", external), addButton);
  const self = {
    /** A new student's card, hidden like the others when the search does not match it. */
    add(s) { cards.append(studentCard(ctx, s).root); filter(); },
    root: h("section", { "aria-labelledby": "roster-h" }, h("h2", { id: "roster-h" }, "Students"),
      h("div", { class: "row" }, field("Find a student", search)), cards, h("h3", {}, "Add a student"), add),
    ready: (async () => {
      try { ctx.matrix = await courses.attendance(course.id); } catch { ctx.matrix = null; }
      cards.append(...ctx.students.map((s) => studentCard(ctx, s).root));
    })(),
  };
  return self;
}

/** A student's attendance rate, from the course's matrix. */
function rateText(ctx, id) {
  const row = ctx.matrix && ctx.matrix.students.find((r) => r.student === id);
  const held = ctx.matrix ? ctx.matrix.sessions.length : 0;
  return row && held ? `${Math.round((100 * row.present) / held)} % attendance · present ${row.present} of ${held}` : "No session yet";
}

function studentCard(ctx, s) {
  const card = component("article", { class: "card student-card", "data-search": `${s.name} ${s.external_id || ""}`.toLowerCase(), "aria-label": s.name }, async (self) => {
    const refs = await students.references(s.id);
    const status = h("p", { class: "muted", "aria-live": "polite" });
    const bar = h("progress", { max: 1, value: 0, hidden: true });
    const files = h("input", { type: "file", accept: "image/*,.heic,.heif", multiple: true, "data-key": "files" });
    files.addEventListener("change", () => guard(files, async () => {
      if (!files.files.length) return;
      bar.hidden = false;
      status.textContent = "Uploading…";
      const r = await students.enroll(s.id, [...files.files], (f) => { bar.value = f; });
      const failed = r.results.filter((x) => x.status === "error");
      await self.refresh();
      const note = self.root.querySelector(".enroll-status");
      note.replaceChildren(`${r.stored} stored`, ...failed.map((x) => h("span", { class: "bad" }, ` · ${x.file}: ${plainError(new ApiError(x, 422))}`)));
      if (failed.length) toast(`${failed.length} of the photos could not be used; see the card.`, { kind: "error", near: self.root });
      else toast(`${plural(r.stored, "reference photo")} stored for ${s.name}.`, { near: self.root });
    }));
    const main = refs.find((r) => r.face);
    const editForm = studentEditForm(s, self);
    const del = h("button", {
      type: "button", class: "danger small", "data-key": "delete",
      onclick: async () => {
        if (!await confirmDialog(`Delete ${s.name} and their reference photos? Their faces in session photos become unknown again.`)) return;
        const card = self.root;
        deleteWithUndo({
          message: `${s.name} deleted.`, near: card.parentElement,
          hide: () => { card.hidden = true; },
          restore: () => { card.hidden = false; },
          commit: async (keepalive) => {
            await students.remove(s.id, { keepalive });
            card.remove();
            ctx.students = ctx.students.filter((x) => x.id !== s.id);
            if (!keepalive) { ctx.refreshMatrix(); ctx.refreshGroups(); }
          },
        });
      },
    }, "Delete");
    return [
      main ? authImg(crops.image(main.face), { class: "portrait", alt: `Reference photo of ${s.name}` }) : h("div", { class: "portrait none" }, "No photo"),
      h("div", { class: "card-body" },
        h("h3", {}, s.name),
        s.external_id ? h("p", { class: "muted" }, s.external_id) : null,
        h("p", { class: "rate", "data-student": s.id }, rateText(ctx, s.id)),
        h("details", {}, h("summary", {}, `Reference photos (${refs.length})`),
          h("div", { class: "grid" }, refs.map((r) => referenceThumb(s, r, self)))),
        field(`Reference photos for ${s.name}`, files, { class: "file" }), bar,
        h("p", { class: "muted enroll-status" }), status,
        h("div", { class: "row" }, h("button", { type: "button", class: "small", "data-key": "edit", onclick: () => { editForm.hidden = !editForm.hidden; if (!editForm.hidden) editForm.querySelector("input").focus(); } }, "Edit"), del),
        editForm),
    ];
  });
  return card;
}

function studentEditForm(s, card) {
  const name = h("input", { value: s.name, required: true });
  const external = h("input", { value: s.external_id || "" });
  const save = h("button", { type: "submit" }, "Save");
  const form = h("form", {
    class: "row", hidden: true,
    onsubmit: (ev) => {
      ev.preventDefault();
      guard(save, async () => {
        const r = await students.update(s.id, { name: name.value, external_id: external.value || null });
        Object.assign(s, r);
        card.root.dataset.search = `${s.name} ${s.external_id || ""}`.toLowerCase();
        card.root.setAttribute("aria-label", s.name);
        await card.refresh();
        const edit = card.root.querySelector('[data-key="edit"]');
        if (edit) edit.focus();
        toast(`${s.name} saved.`, { near: card.root });
      });
    },
  }, field("Name", name), field("Student number", external), save);
  return form;
}

function referenceThumb(s, r, card) {
  const wrap = h("div", { class: "ref" },
    r.face ? authImg(crops.image(r.face), { class: "thumb", alt: `Reference face of ${s.name}` }) : h("span", { class: "muted" }, "no face"));
  wrap.append(h("button", {
    type: "button", class: "small", "aria-label": `Remove this reference photo of ${s.name}`,
    onclick: () => deleteWithUndo({
      message: `Reference photo of ${s.name} removed.`, near: card.root,
      hide: () => { wrap.hidden = true; },
      restore: () => { wrap.hidden = false; },
      commit: async (keepalive) => { await students.removeReference(r.id, { keepalive }); wrap.remove(); },
    }),
  }, "Remove"));
  return wrap;
}

// ---------- sessions ----------

function sessionsSection(course) {
  return component("section", { "aria-labelledby": "sessions-h" }, async () => {
    const list = (await sessions.list(course.id)).sort((a, b) => b.held_at.localeCompare(a.held_at));
    const title = h("input", { required: true });
    const date = h("input", { type: "date", required: true, value: new Date().toISOString().slice(0, 10) });
    const submit = h("button", { class: "primary", type: "submit" }, "Create session");
    const create = h("form", {
      class: "row",
      onsubmit: (ev) => {
        ev.preventDefault();
        guard(submit, async () => {
          const s = await sessions.create({ course: course.id, title: title.value, held_at: `${date.value}T09:00:00Z` });
          location.hash = `#/sessions/${s.id}`;
        });
      },
    }, field("Session title", title), field("Held on", date), submit);
    return [h("h2", { id: "sessions-h" }, "Sessions"),
      list.length ? h("ul", { class: "plain" }, list.map((s) => h("li", {},
        h("a", { href: `#/sessions/${s.id}` }, s.title), h("span", { class: "muted" }, ` ${s.held_at.slice(0, 10)} · ${s.status}`))))
        : h("p", { class: "muted" }, "No session yet."),
      h("h3", {}, "New session"), create];
  });
}

// ---------- groups of unknown faces ----------

// Groups shown at first; a course with many unknown people gets a button for the rest.
const GROUPS_SHOWN = 8;

function clustersSection(ctx, roster) {
  const { course } = ctx;
  let shown = GROUPS_SHOWN;
  const section = component("section", { "aria-labelledby": "groups-h" }, async (self) => {
    const list = (await courses.clusters(course.id)).filter((c) => c.members.length);
    const byId = Object.fromEntries(ctx.students.map((s) => [s.id, s]));
    const selected = new Set();
    const merge = h("button", {
      type: "button", "data-key": "merge",
      onclick: () => guard(merge, async () => {
        if (selected.size < 2) throw userError("select two groups or more");
        await clusters.merge([...selected]);
        await self.refresh();
        toast("Groups merged.", { near: self.root });
      }),
    }, "Merge selected groups");
    // Undo of a naming: the server puts each face back as it was; the emptied group is gone, so
    // the unknown faces are grouped again.
    const undoNaming = (members) => ({
      label: "Undo",
      run: () => guard(self.root, async () => {
        for (const m of members) await crops.undo(m);
        await courses.recluster(course.id);
        await self.refresh();
        ctx.refreshMatrix();
        toast(`${plural(members.length, "face")} back as they were.`, { near: self.root });
      }),
    });
    const items = list.slice(0, shown).map((c, i) => {
      const n = i + 1;
      const pick = h("input", { type: "checkbox", "data-key": `pick-${c.id}`, onchange: (ev) => { ev.target.checked ? selected.add(c.id) : selected.delete(c.id); } });
      // Never pre-selected: a suggestion is a hint, and one click must not mislabel a group.
      const who = h("select", { "data-key": `who-${c.id}` }, h("option", { value: "" }, "— choose a student —"),
        ctx.students.map((s) => h("option", { value: s.id }, s.name)));
      const suggested = c.suggestion && byId[c.suggestion.student];
      const newName = h("input", { "data-key": `new-${c.id}` });
      const assign = h("button", {
        type: "button", "data-key": `assign-${c.id}`,
        onclick: () => guard(assign, async () => {
          if (!who.value) throw userError("choose a student first");
          const r = await clusters.name(c.id, { student_id: Number(who.value) });
          await self.refresh();
          toast(`${plural(c.members.length, "face")} assigned to ${byId[who.value] ? byId[who.value].name : "the student"}.`, { near: self.root, action: undoNaming(c.members) });
          ctx.refreshMatrix();
          return r;
        }),
      }, "Assign group");
      const enroll = h("button", {
        type: "button", "data-key": `enroll-${c.id}`,
        onclick: () => guard(enroll, async () => {
          const r = await clusters.name(c.id, { new_student: { name: newName.value } });
          if (r && r.student) { ctx.students.push(r.student); roster.add(r.student); }
          await self.refresh();
          toast(`${newName.value} enrolled from group ${n}.`, { near: self.root, action: undoNaming(c.members) });
          ctx.refreshMatrix();
        }),
      }, "Enroll new student");
      return h("div", { class: "cluster" },
        h("div", { class: "row" }, field(`Select group ${n}`, pick),
          h("strong", {}, `Group ${n}: ${plural(c.members.length, "face")}`),
          c.locked ? h("span", { class: "muted" }, "(merged by hand)") : null,
          suggested ? h("span", { class: "muted" }, `resembles ${suggested.name} (similarity ${c.suggestion.similarity.toFixed(2)})`) : null),
        h("div", { class: "grid" }, c.members.slice(0, 8).map((m) => authImg(crops.image(m), { class: "thumb", alt: `Face ${m}` }))),
        h("div", { class: "row" }, field(`Name group ${n} as`, who), assign,
          field(`Or enroll a new student from group ${n}`, newName), enroll));
    });
    const regroup = h("button", {
      type: "button", "data-key": "regroup",
      onclick: () => guard(regroup, async () => { await courses.recluster(course.id); await self.refresh(); toast("Unknown faces regrouped.", { near: self.root }); }),
    }, "Regroup all unknown faces");
    return [h("h2", { id: "groups-h" }, "Unknown faces, grouped"),
      list.length ? [h("p", { class: "muted" }, "Faces nobody matched, grouped across sessions by similarity."), items,
        list.length > shown ? h("button", {
          type: "button", "data-key": "more-groups",
          onclick: async () => {
            const first = shown;
            shown += GROUPS_SHOWN * 2;
            await self.refresh();
            const next = self.root.querySelectorAll(".cluster input[type=checkbox]")[first];
            if (next) next.focus();
          },
        }, `Show ${Math.min(GROUPS_SHOWN * 2, list.length - shown)} more of ${list.length} groups`) : null,
        merge]
        : h("p", { class: "muted" }, "No group of unknown faces."),
      regroup];
  });
  return section;
}

// ---------- matrix ----------

function matrixSection(ctx) {
  return component("section", { "aria-labelledby": "matrix-h" }, async () => {
    const m = await courses.attendance(ctx.course.id);
    ctx.matrix = m;
    return [h("h2", { id: "matrix-h" }, "Attendance matrix"),
      m.sessions.length ? h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Attendance matrix" }, h("table", { class: "matrix" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Student"), m.sessions.map((s) => h("th", { scope: "col" }, h("a", { href: `#/sessions/${s.id}` }, s.title))), h("th", { scope: "col" }, "Present"))),
        h("tbody", {}, m.students.map((r) => h("tr", {}, h("th", { scope: "row" }, r.name),
          r.statuses.map((st, i) => h("td", { class: `status-${st}` }, h("a", { href: `#/sessions/${m.sessions[i].id}`, "aria-label": `${r.name}, ${m.sessions[i].title}: ${st}` }, st))),
          h("td", {}, r.present))))))
        : h("p", { class: "muted" }, "No session yet."),
      h("button", { type: "button", onclick: (ev) => guard(ev.currentTarget, () => courses.attendanceCsv(ctx.course.id)) }, "Download course CSV")];
  });
}
