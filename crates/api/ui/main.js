// Entry point of the web UI (a native ES module; no build step).
import { start } from "./router.js";

// The skip link moves focus without touching the hash (the hash is the route).
document.querySelector(".skip").addEventListener("click", (ev) => {
  ev.preventDefault();
  const main = document.getElementById("main");
  main.focus();
  main.scrollIntoView();
});
start();
