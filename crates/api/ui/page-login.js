// The login page.
import { auth } from "./api.js";
import { h, field, guard } from "./dom.js";

export function loginPage(main) {
  document.title = "Log in — AttendanSee";
  const user = h("input", { name: "username", autocomplete: "username", required: true });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { class: "primary", type: "submit" }, "Log in");
  const form = h("form", {
    class: "row",
    onsubmit: (ev) => {
      ev.preventDefault();
      guard(submit, async () => {
        await auth.login(user.value, pass.value);
        location.hash = "#/";
      });
    },
  }, field("Username", user), field("Password", pass), submit);
  main.replaceChildren(h("h1", {}, "Log in"), h("section", {}, form));
}
