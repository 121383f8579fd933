// The home page: each course with its recent sessions and what still needs review, and a form
// for a new course.
import { courses, sessions } from "./api.js";
import { h, field, guard, component, plural } from "./dom.js";

export async function homePage(main) {
  document.title = "Courses — AttendanSee";
  const list = await courses.list();
  const name = h("input", { required: true });
  const code = h("input", { required: true });
  const submit = h("button", { class: "primary", type: "submit" }, "Create course");
  const create = h("form", {
    class: "row",
    onsubmit: (ev) => {
      ev.preventDefault();
      guard(submit, async () => {
        const c = await courses.create({ name: name.value, code: code.value });
        location.hash = `#/courses/${c.id}`;
      });
    },
  }, field("Course name", name), field("Code", code), submit);
  main.replaceChildren(
    h("h1", {}, "Courses"),
    h("section", { "aria-labelledby": "your-courses" }, h("h2", { id: "your-courses" }, "Your courses"),
      list.length ? h("div", { class: "cards" }, list.map((c) => courseCard(c).root)) : h("p", { class: "muted" }, "No course yet.")),
    h("section", { "aria-labelledby": "new-course" }, h("h2", { id: "new-course" }, "New course"), create));
}

function courseCard(course) {
  return component("article", { class: "card course-card" }, async () => {
    const all = await sessions.list(course.id);
    const recent = all.slice().sort((a, b) => b.held_at.localeCompare(a.held_at)).slice(0, 6);
    const rows = await Promise.all(recent.map(async (s) => {
      let todo = "";
      try {
        const a = await sessions.attendance(s.id);
        if (!a.photos) todo = "no photo yet";
        else if (a.unfinished_photos) todo = `${plural(a.unfinished_photos, "photo")} not processed`;
        else if (a.unresolved_faces) todo = `${plural(a.unresolved_faces, "face")} to review`;
        else todo = `done · ${a.present} present`;
        return h("li", {}, h("a", { href: `#/sessions/${s.id}` }, s.title), " ",
          h("span", { class: a.unresolved_faces || a.unfinished_photos ? "badge todo" : "badge" }, todo),
          h("span", { class: "muted" }, ` ${s.held_at.slice(0, 10)}`));
      } catch {
        return h("li", {}, h("a", { href: `#/sessions/${s.id}` }, s.title));
      }
    }));
    return [
      h("h3", {}, h("a", { href: `#/courses/${course.id}` }, `${course.code} — ${course.name}`)),
      rows.length ? h("ul", { class: "plain" }, rows) : h("p", { class: "muted" }, "No session yet."),
      all.length > recent.length ? h("p", { class: "muted" }, `${all.length - recent.length} older sessions on the course page`) : null,
    ];
  });
}
