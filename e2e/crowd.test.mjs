// A session with 300+ faces (the staircase group photo six times, as different files, and the
// Solvay conference photo), measured in the browser: time to the first useful paint of the
// session and review pages, and time per review action (key press to the next face drawn).
// Prints the numbers (targets: first paint under 1 s, each action under 100 ms) and fails on a
// big regression only (limits: first paint under 3 s, median action under 300 ms), so that a
// busy CI machine does not fail it. Driven by crates/attendansee/tests/web_ui.rs:
//   node crowd.test.mjs <base-url> <username> <password> <faces-dir> <artifacts-dir>
import fs from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { open, login, apiClient, T } from "./lib.mjs";

const [base, username, password, faces, artifacts] = process.argv.slice(2);
const ctx = await open(base, artifacts);
const { page, step, shot, errors, browser } = ctx;
const api = await apiClient(base, username, password);
const shared = path.dirname(faces);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const p95 = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * 0.95))]; };
const results = {};

let session; let solvay; let faceTotal;
await step("set up a session with 300+ faces through the API", async () => {
  const course = await api("POST", "/attendance/courses/", { name: "Big lecture", code: "BIG1" });
  const bbt = path.join(shared, "faceapi_bbt");
  for (const who of ["leonard", "penny", "sheldon"]) {
    const s = await api("POST", "/attendance/students/", { course: course.id, name: who });
    await api("POST", `/attendance/students/${s.id}/references/`, api.files([1, 2].map((n) => path.join(bbt, `${who}_${who}${n}.png`))));
  }
  session = await api("POST", "/attendance/sessions/", { course: course.id, title: "Crowd", held_at: "2026-01-05T09:00:00Z" });
  const group = fs.readFileSync(path.join(shared, "crowd/group.jpg"));
  // Bytes after the JPEG's end make six different files of one picture (uploads are deduplicated).
  const copies = [0, 1, 2, 3, 4, 5].map((k) => [`group-${k}.jpg`, Buffer.concat([group, Buffer.alloc(k + 1, k)])]);
  copies.push(["solvay.png", fs.readFileSync(path.join(shared, "scrfd_testimages/solvay_conference_1927.png"))]);
  const up = await api("POST", `/attendance/sessions/${session.id}/images/`, api.buffers(copies));
  assert.equal(up.stored, 7, JSON.stringify(up));
  const t0 = Date.now();
  const job = await api.process(session.id);
  assert.equal(job.status, "succeeded", JSON.stringify(job));
  faceTotal = job.stats.faces;
  console.log(`# processed 7 photos with ${faceTotal} faces in ${Date.now() - t0} ms`);
  assert.ok(faceTotal >= 300, `${faceTotal} faces`);
  solvay = up.results.find((r) => r.file === "solvay.png").image.id;
});

await step("log in", () => login(page, base, username, password));

await step("session page: first useful paint (photos with their boxes)", async () => {
  const t0 = Date.now();
  await page.goto(`${base}/#/sessions/${session.id}`);
  await page.locator(".face-box").first().waitFor({ timeout: T });
  results.sessionBoxesMs = Date.now() - t0;
  await page.waitForFunction(() => { const i = document.querySelector("figure.photo img"); return i && i.complete && i.naturalWidth > 0; }, null, { timeout: T });
  results.sessionFirstPhotoMs = Date.now() - t0;
  assert.equal(await page.locator(".photos .face-box").count(), faceTotal);
  await shot("10-crowd-session-1280");
});

await step("every box of the crowded Solvay photo can be clicked (no label covers a neighbour)", async () => {
  const fig = page.locator(`figure[data-image="${solvay}"]`);
  await fig.scrollIntoViewIfNeeded();
  const covered = await fig.evaluate((f) => [...f.querySelectorAll(".face-box")].filter((b) => {
    const r = b.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return !(hit && hit.closest(".face-box") === b);
  }).map((b) => b.dataset.face));
  const total = await fig.locator(".face-box").count();
  assert.ok(total >= 25, `${total} boxes on Solvay`);
  assert.deepEqual(covered, [], `covered boxes of ${total}`);
  // Hovering shows the label of the box under the pointer only.
  const one = fig.locator(".face-box").nth(3);
  await one.hover();
  assert.equal(await fig.locator(".face-label:visible").count(), 1);
  const t0 = Date.now();
  await one.click();
  await page.locator("#face-panel").getByText(/^Face \d+:/).waitFor();
  results.panelOpenMs = Date.now() - t0;
});

await step("session page: a correction in the panel redraws only what it changes", async () => {
  const panel = page.locator("#face-panel");
  const title = await panel.locator(".face-title").innerText();
  const id = title.match(/^Face (\d+):/)[1];
  await page.evaluate(() => { document.querySelector("h1").dataset.marker = "kept"; });
  const t0 = Date.now();
  await panel.getByRole("button", { name: "Not a student" }).click();
  await panel.getByText(`Face ${id}: not a student`).waitFor();
  results.panelActionMs = Date.now() - t0;
  assert.equal(await page.evaluate(() => document.querySelector("h1").dataset.marker), "kept");
  await page.getByRole("status").filter({ hasText: `Face ${id} marked as not a student.` }).getByRole("button", { name: "Undo" }).click();
  await panel.getByText(`Face ${id}: unknown`).waitFor();
});

await step("course page: the groups of the six copies, none with a student chosen in advance", async () => {
  await page.goto(`${base}/#/courses/${session.course}`);
  await page.getByRole("heading", { name: "Unknown faces, grouped" }).waitFor();
  const selects = page.locator(".cluster select");
  await selects.first().waitFor({ timeout: T });
  const values = await selects.evaluateAll((s) => s.map((x) => x.value));
  assert.ok(values.length >= 5, `${values.length} groups`);
  // Not vacuous: some groups do come with a suggestion (shown as a hint only).
  assert.ok(await page.locator(".cluster").getByText(/resembles /).count() > 0, "no group has a suggestion");
  assert.deepEqual(values.filter((v) => v !== ""), [], "a group has a student chosen in advance");
  assert.equal(await page.getByText(/\b1 faces\b/).count(), 0);
});

await step("review page: first useful paint and time per action", async () => {
  const t0 = Date.now();
  await page.goto(`${base}/#/sessions/${session.id}/review`);
  await page.waitForFunction(() => window.__review && window.__review.firstPaintMs !== null, null, { timeout: T });
  results.reviewFirstPaintMs = Date.now() - t0;
  results.reviewFirstPaintInPageMs = await page.evaluate(() => window.__review.firstPaintMs);
  assert.match(await page.locator(".review-progress").innerText(), new RegExp(`^1 of ${faceTotal} to review`));
  // Key press to the next face painted (two animation frames after the key), in the page.
  await page.evaluate(() => {
    window.__paints = [];
    document.addEventListener("keydown", () => {
      const t = performance.now();
      requestAnimationFrame(() => requestAnimationFrame(() => window.__paints.push(performance.now() - t)));
    }, { capture: true });
  });
  const keys = [];
  for (let i = 0; i < 10; i++) keys.push("s");
  for (let i = 0; i < 5; i++) keys.push("ArrowLeft");
  for (let i = 0; i < 5; i++) keys.push("n");
  for (let i = 0; i < 5; i++) keys.push("z");
  for (let i = 0; i < 5; i++) keys.push("s");
  for (const k of keys) {
    const before = await page.locator(".review-now").innerText();
    await page.keyboard.press(k);
    await page.waitForFunction((b) => document.querySelector(".review-now").innerText !== b, before);
  }
  await page.waitForFunction((n) => window.__paints.length >= n, keys.length);
  const actions = await page.evaluate(() => window.__review.actions.slice(-30));
  const paints = await page.evaluate(() => window.__paints);
  results.actionMedianMs = median(actions); results.actionP95Ms = p95(actions); results.actionMaxMs = Math.max(...actions);
  results.paintMedianMs = median(paints); results.paintP95Ms = p95(paints); results.paintMaxMs = Math.max(...paints);
  await shot("11-crowd-review-1280");
  // The five "not a student" were undone: nothing decided by hand is left on the server.
  for (let i = 0; i < 50; i++) {
    const manual = (await api.crops(session.id)).filter((c) => c.not_a_student);
    if (!manual.length) break;
    assert.ok(i < 49, `${manual.length} faces still marked`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

await step("the timings stay within generous limits (a big regression fails)", async () => {
  assert.ok(results.reviewFirstPaintMs < 3000, `review first paint ${results.reviewFirstPaintMs} ms`);
  assert.ok(results.sessionBoxesMs < 3000, `session boxes after ${results.sessionBoxesMs} ms`);
  assert.ok(results.actionMedianMs < 300, `median review action ${results.actionMedianMs} ms`);
  assert.ok(results.paintMedianMs < 300, `median key-to-paint ${results.paintMedianMs} ms`);
});

await step("no script errors", async () => {
  assert.deepEqual(errors.filter((e) => !/status of 4\d\d/.test(e)), []);
});

const f = (x) => Math.round(x * 10) / 10;
console.log(`# crowd: ${faceTotal} faces in 7 photos`);
console.log(`# session page: boxes after ${results.sessionBoxesMs} ms, first photo after ${results.sessionFirstPhotoMs} ms; a face's panel ${results.panelOpenMs} ms after a click; a correction in the panel shown after ${results.panelActionMs} ms (click to panel, with the server's answer)`);
console.log(`# review page: first face painted ${results.reviewFirstPaintMs} ms after navigation (${f(results.reviewFirstPaintInPageMs)} ms inside the page; target < 1000 ms)`);
console.log(`# review action (key to next face in the DOM): median ${f(results.actionMedianMs)} ms, p95 ${f(results.actionP95Ms)} ms, max ${f(results.actionMaxMs)} ms (target < 100 ms)`);
console.log(`# review action (key to next frame painted): median ${f(results.paintMedianMs)} ms, p95 ${f(results.paintP95Ms)} ms, max ${f(results.paintMaxMs)} ms`);
await browser.close();
console.log("all crowd steps passed");
