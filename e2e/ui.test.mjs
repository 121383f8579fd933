// End-to-end test of the web UI in headless Chromium (Debian's /usr/bin/chromium), driven by
// crates/attendansee/tests/web_ui.rs, which starts the real server and passes:
//   node ui.test.mjs <base-url> <username> <password> <faces-dir> <artifacts-dir> [<poison-photo>]
// From login to the attendance CSV through the UI, then a review with the keyboard alone, and
// every page at 375 and 1280 px (screenshots, overflow, axe-core). Any failure exits 1 with the
// reason and a screenshot.
import fs from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { open, login, apiClient, checkPage, panelInView, axe, T } from "./lib.mjs";

const [base, username, password, faces, artifacts, poison] = process.argv.slice(2);
const bbt = path.join(faces, "../faceapi_bbt");
const ctx = await open(base, artifacts);
const { page, step, shot, errors, browser } = ctx;

const people = {
  "Barack Obama": ["obama.jpg", "train_obama_obama2.jpg"],
  "Joe Biden": ["biden.jpg", "train_biden_biden2.jpg"],
  "Kit Harington": ["train_kit_harington_john1.jpeg", "train_kit_harington_john2.jpeg"],
  "Rose Leslie": ["train_rose_leslie_img1.jpg", "train_rose_leslie_img2.jpg"],
  "Alex Lacamoire": ["train_alex_lacamoire_img1.jpg"],
};
const groups = ["examples__two_people.jpg", "test_obama_and_biden.jpg", "test_kit_with_rose.jpg"];
const bbtPeople = ["leonard", "penny", "sheldon", "howard", "raj"];
const cap = (s) => s[0].toUpperCase() + s.slice(1);

let courseId; let sessionId;

await step("log in", async () => {
  await page.goto(base + "/");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await checkPage(ctx, "01-login");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Courses", exact: true }).waitFor();
});

await step("a wrong action shows a readable error next to it", async () => {
  await page.getByLabel("Course name").fill("Databases");
  await page.getByLabel("Code").fill("   ");
  await page.getByRole("button", { name: "Create course" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.innerText(), /Please check what you entered \(ValidationError\): code must not be empty/);
  await alert.getByRole("button", { name: "Dismiss" }).click();
});

await step("create a course", async () => {
  await page.getByLabel("Code").fill("CS101");
  await page.getByRole("button", { name: "Create course" }).click();
  await page.getByRole("heading", { name: "CS101 — Databases" }).waitFor();
  courseId = Number(new URL(page.url()).hash.match(/courses\/(\d+)/)[1]);
  // A new page starts at the top, its heading focused.
  await page.waitForFunction(() => document.activeElement.tagName === "H1", null, { timeout: 5000 });
});

await step("enroll the students from their photos", async () => {
  for (const [name, photos] of Object.entries(people)) {
    await page.getByLabel("Student name").fill(name);
    await page.getByRole("button", { name: "Add student" }).click();
    const input = page.getByLabel(`Reference photos for ${name}`);
    await input.waitFor();
    await input.setInputFiles(photos.map((p) => path.join(faces, p)));
    await page.getByRole("article", { name }).getByText(`${photos.length} stored`).waitFor({ timeout: T });
  }
  await page.getByAltText("Reference photo of Alex Lacamoire").waitFor();
});

const api = await apiClient(base, username, password);

await step("the Big Bang Theory students are enrolled through the API", async () => {
  for (const who of bbtPeople) {
    const s = await api("POST", "/attendance/students/", { course: courseId, name: cap(who) });
    const r = await api("POST", `/attendance/students/${s.id}/references/`, api.files([1, 2, 3].map((n) => path.join(bbt, `${who}_${who}${n}.png`))));
    assert.equal(r.stored, 3, JSON.stringify(r));
  }
});

await step("create a session and upload the group photos with progress", async () => {
  await page.reload();
  await page.getByLabel("Session title").fill("Week 1");
  await page.getByRole("button", { name: "Create session" }).click();
  await page.getByRole("heading", { name: "Week 1" }).waitFor();
  sessionId = Number(new URL(page.url()).hash.match(/sessions\/(\d+)/)[1]);
  // Before processing nothing claims that every face is identified.
  await page.getByText("No photo yet.").first().waitFor();
  assert.equal(await page.getByText("Every face is identified.").count(), 0);
  await page.getByLabel("Photos to upload").setInputFiles([...groups.map((p) => path.join(faces, p)), path.join(bbt, "bbt1.jpg"), path.join(bbt, "bbt2.jpg")]);
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  await page.getByText("5 stored, 0 duplicate, 0 failed").waitFor({ timeout: T });
  await page.getByText("5 photos not processed yet: process them to find the faces.").waitFor();
  assert.equal(await page.getByText("Every face is identified.").count(), 0);
});

let faceCount;
await step("process and see the faces boxed on previews", async () => {
  await page.getByRole("button", { name: "Process photos" }).click();
  await page.locator("#job-status").getByText(/Processing succeeded: 5 of 5 photos/).waitFor({ timeout: T });
  await page.locator(".face-box").first().waitFor({ timeout: T });
  faceCount = await page.locator(".photos .face-box").count();
  assert.ok(faceCount >= 12, `${faceCount} faces`);
  const sources = await page.locator("figure.photo img").evaluateAll((imgs) => imgs.map((i) => i.dataset.src));
  assert.equal(sources.length, 5);
  for (const src of sources) assert.match(src, /^\/attendance\/images\/\d+\/preview\/$/);
  await page.waitForFunction(() => [...document.querySelectorAll("figure.photo img")].some((i) => i.complete && i.naturalWidth > 0), null, { timeout: T });
});

await step("processing again says there is nothing new instead of 0 of 0 photos", async () => {
  await page.getByRole("button", { name: "Process photos" }).click();
  await page.locator("#job-status").getByText("Every photo is processed already; upload more photos to process them.").waitFor({ timeout: T });
  assert.equal(await page.getByText(/0 of 0/).count(), 0);
});

await step("a face shows its panel beside the photo, with why and the runner-up", async () => {
  await page.getByRole("button", { name: /: Barack Obama$/ }).first().click();
  const panel = page.locator("#face-panel");
  await panel.getByText(/Recognised: similar enough/).waitFor();
  // Selecting a face takes the keyboard to the panel's heading.
  await page.waitForFunction(() => document.activeElement.classList.contains("face-title"), null, { timeout: 5000 });
  await panel.getByText(/Best: Barack Obama \(similarity 0\.\d+\); runner-up: .+/).waitFor();
  await panelInView(page, "1280 px");
  await panel.getByRole("button", { name: "Compute face signature" }).click();
  await page.getByText(/Face signature of face \d+ computed again\./).waitFor();
});

await step("correct one face in the panel without re-rendering the page, then undo", async () => {
  // The unidentified girl of test_obama_and_biden.jpg becomes Alex Lacamoire (a deliberate
  // correction: she is nobody enrolled).
  const girl = page.locator("figure", { hasText: "test_obama_and_biden.jpg" }).getByRole("button", { name: /: unknown$/ });
  assert.equal(await girl.count(), 1);
  const id = await girl.getAttribute("data-face");
  await girl.click();
  const panel = page.locator("#face-panel");
  await panel.getByText(`Face ${id}: unknown`).waitFor();
  await panel.getByLabel("Assign to").selectOption({ label: "Alex Lacamoire" });
  const scrolled = await page.evaluate(() => { document.querySelector("h1").dataset.marker = "kept"; return window.scrollY; });
  assert.ok(scrolled > 0, "the panel is below the top of the page, so keeping the scroll position means something");
  await panel.getByRole("button", { name: "Assign", exact: true }).click();
  await panel.getByText(`Face ${id}: Alex Lacamoire`).waitFor();
  // Focus stays on the button the user pressed, the page was not rebuilt and did not scroll.
  await page.waitForFunction(() => document.activeElement.dataset.key === "assign", null, { timeout: 5000 });
  assert.equal(await page.evaluate(() => document.querySelector("h1").dataset.marker), "kept");
  assert.ok(Math.abs(await page.evaluate(() => window.scrollY) - scrolled) <= 2, "the page scrolled after a correction");
  // The toast is next to the button (the panel was redrawn under it).
  const note = page.getByRole("status").filter({ hasText: `Face ${id} assigned to Alex Lacamoire.` });
  assert.ok(await note.evaluate((e) => e.classList.contains("anchored")), "the toast is not anchored near the action");
  const [noteBox, buttonBox] = [await note.boundingBox(), await panel.getByRole("button", { name: "Assign", exact: true }).boundingBox()];
  assert.ok(Math.abs(noteBox.y - (buttonBox.y + buttonBox.height)) < 120, `toast at ${JSON.stringify(noteBox)}, button at ${JSON.stringify(buttonBox)}`);
  await page.getByRole("status").filter({ hasText: `Face ${id} assigned to Alex Lacamoire.` }).getByRole("button", { name: "Undo" }).click();
  await panel.getByText(`Face ${id}: unknown`).waitFor();
  await page.getByText(`Face ${id} is back as it was.`).waitFor();
});

await step("unidentified faces: select a photo's faces at once, mark them, undo", async () => {
  const section = page.getByRole("region", { name: /Unidentified faces/ });
  const before = Number((await section.getByRole("heading").innerText()).match(/\((\d+)\)/)[1]);
  const button = section.getByRole("button", { name: /^Select the \d+ faces? of bbt1\.jpg$/ });
  const n = Number((await button.innerText()).match(/Select the (\d+)/)[1]);
  await button.click();
  await section.getByText(`${n} selected`).waitFor();
  await section.getByRole("button", { name: "Not a student" }).click();
  await section.getByRole("heading", { name: `Unidentified faces (${before - n})` }).waitFor();
  await page.getByRole("status").filter({ hasText: `marked as not a student` }).getByRole("button", { name: "Undo" }).click();
  await section.getByRole("heading", { name: `Unidentified faces (${before})` }).waitFor();
});

await step("attendance lists who was there, with evidence", async () => {
  const table = page.locator("#attendance");
  for (const name of Object.keys(people).filter((n) => n !== "Alex Lacamoire")) {
    await table.getByRole("row", { name: new RegExp(name) }).getByText("present").first().waitFor();
  }
});

await step("the session page at 375 and 1280 px", async () => {
  await page.locator("#face-panel").getByRole("button", { name: "Close the face panel" }).click();
  await checkPage(ctx, "03-session", () => page.locator(".face-box").first().waitFor());
  await page.setViewportSize({ width: 375, height: 800 });
  const biden = page.getByRole("button", { name: /: Joe Biden$/ }).first();
  const bidenId = await biden.getAttribute("data-face");
  await biden.click();
  await panelInView(page, "375 px");
  await shot("04-face-panel-375");
  await axe(page, "the face drawer at 375 px");
  // Escape closes the drawer and the keyboard is back on the face's box.
  await page.waitForFunction(() => document.activeElement.classList.contains("face-title"), null, { timeout: 5000 });
  await page.keyboard.press("Escape");
  await page.locator("#face-panel").waitFor({ state: "hidden" });
  assert.equal(await page.evaluate(() => document.activeElement.dataset.face), bidenId);
  await page.setViewportSize({ width: 1280, height: 900 });
});

await step("the lightbox zooms a photo, and its boxes open the panel", async () => {
  await page.locator("figure", { hasText: "bbt1.jpg" }).getByRole("button", { name: "Enlarge" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  await dialog.getByRole("button", { name: "Zoom in" }).click();
  const transform = await dialog.locator(".lb-stage").evaluate((e) => e.style.transform);
  assert.match(transform, /scale\(1\.5\)/);
  await shot("05-lightbox");
  await axe(page, "the lightbox");
  const rects = () => dialog.evaluate((d) => {
    const r = (e) => { const b = e.getBoundingClientRect(); return { l: b.left, t: b.top, r: b.right, b: b.bottom }; };
    return { view: r(d.querySelector(".lb-viewport")), stage: r(d.querySelector(".lb-stage")) };
  });
  // Panning stops at the photo's edges: the zoomed photo still covers the viewport's width.
  await dialog.locator(".lb-viewport").focus();
  for (let i = 0; i < 30; i++) await page.keyboard.press("ArrowLeft");
  let { view, stage } = await rects();
  assert.ok(stage.l <= view.l + 1 && stage.r >= view.r - 1, `panned off the photo: ${JSON.stringify({ view, stage })}`);
  // The wheel zooms around the pointer: the point under it stays put.
  const target = dialog.locator(".face-box").nth(1);
  const before = await target.boundingBox();
  const [px, py] = [before.x + before.width / 2, before.y + before.height / 2];
  await page.mouse.move(px, py);
  await page.mouse.wheel(0, -120);
  await page.waitForFunction(() => !/scale\(1\.5\)/.test(document.querySelector(".lb-stage").style.transform));
  const after = await target.boundingBox();
  assert.ok(after.width > before.width, "the wheel did not zoom");
  const shift = Math.abs(after.x + after.width / 2 - px);
  assert.ok(shift < 4, `the face under the pointer moved ${shift}px sideways`);
  // Fit shows the whole photo, also in a low window where width is not the limit.
  await page.setViewportSize({ width: 1280, height: 450 });
  await dialog.getByRole("button", { name: "Fit" }).click();
  ({ view, stage } = await rects());
  assert.ok(stage.t >= view.t - 1 && stage.b <= view.b + 1 && stage.l >= view.l - 1 && stage.r <= view.r + 1, `Fit: ${JSON.stringify({ view, stage })}`);
  await page.setViewportSize({ width: 1280, height: 900 });
  await dialog.locator(".face-box").first().click();
  await panelInView(page, "after the lightbox");
  await page.locator("#face-panel").getByRole("button", { name: "Close the face panel" }).click();
});

// ---------- review with the keyboard alone ----------

const current = async () => {
  const text = await page.locator(".review-now").innerText();
  return Number(text.match(/^Face (\d+):/)[1]);
};
const progress = () => page.locator(".review-progress").innerText();

let decided = {};
await step("review mode: open it with the keyboard", async () => {
  const link = page.getByRole("link", { name: /Review faces one by one \(\d+ to review\)/ });
  await link.focus();
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Review: Week 1" }).waitFor();
  await page.locator(".review-now").waitFor();
  assert.match(await progress(), new RegExp(`^1 of ${faceCount} to review · 0 decided$`));
  await checkPage(ctx, "06-review", () => page.locator(".review-now").waitFor());
});

await step("review: least certain first", async () => {
  const crops = await api.crops(sessionId);
  const byId = Object.fromEntries(crops.map((c) => [c.id, c]));
  const first = byId[await current()];
  // A face recognised with a clear lead is never shown before one that was not.
  const matched = crops.filter((c) => c.decision && c.decision.reason === "matched" && !c.quality.issue);
  assert.ok(matched.length < crops.length, "some face must be uncertain");
  assert.notEqual(first.decision && first.decision.reason, "matched");
  // Step through the first faces (S): how sure the system is never decreases along the queue.
  const sure = (c) => {
    const d = c.decision;
    if (!d || !d.best || (c.quality && c.quality.issue)) return 0;
    const lead = d.best.similarity - (d.runner_up ? d.runner_up.similarity : 0);
    return d.reason === "matched" ? 1 + lead : Math.max(0, d.best.similarity) / 2;
  };
  const seen = [await current()];
  for (let k = 1; k < Math.min(10, crops.length); k++) {
    await page.keyboard.press("s");
    await page.waitForFunction((id) => !document.querySelector(".review-now").textContent.startsWith(`Face ${id}:`), seen[seen.length - 1]);
    seen.push(await current());
  }
  const levels = seen.map((id) => sure(byId[id]));
  assert.ok(new Set(levels).size > 1, `the first ${seen.length} faces are all equally sure: ${levels}`);
  for (let k = 1; k < levels.length; k++) assert.ok(levels[k] >= levels[k - 1], `face ${seen[k]} (${levels[k]}) comes after a surer one (${levels[k - 1]})`);
  for (let k = 1; k < seen.length; k++) { await page.keyboard.press("ArrowLeft"); }
  await page.locator(".review-now").getByText(new RegExp(`^Face ${seen[0]}:`)).waitFor();
});

await step("review: an older answer of the server never overwrites a newer decision, and a failed one goes back to its face", async () => {
  // Every decision's answer is slow: N, then Z at once; N's answer arrives after the undo.
  const slow = async (route) => { await new Promise((r) => setTimeout(r, 1200)); await route.continue(); };
  await page.route(/\/face-crops\/\d+\/(not-a-student|undo)\/$/, slow);
  const id = await current();
  const answered = page.waitForResponse((r) => /\/not-a-student\/$/.test(r.url()));
  await page.keyboard.press("n");
  await page.waitForFunction((id) => !document.querySelector(".review-now").textContent.startsWith(`Face ${id}:`), id);
  await page.keyboard.press("z");
  await page.locator(".review-now").getByText(new RegExp(`^Face ${id}:`)).waitFor();
  await answered; // N answered, the undo not yet (1.2 s more): draw the face again
  await page.waitForTimeout(100);
  await page.keyboard.press("s");
  await page.keyboard.press("ArrowLeft");
  await page.locator(".review-now").getByText(new RegExp(`^Face ${id}:`)).waitFor();
  assert.match(await progress(), /· 0 decided$/);
  assert.doesNotMatch(await page.locator(".review-now").innerText(), /not a student/);
  await page.waitForTimeout(1500);
  assert.match(await progress(), /· 0 decided$/);
  await page.unroute(/\/face-crops\/\d+\/(not-a-student|undo)\/$/, slow);
  // A failure: the decision leaves the history and the face is shown again.
  const fail = (route) => route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ status: "error", error_type: "StorageUnavailable", error: "try again" }) });
  await page.route(/\/face-crops\/\d+\/not-a-student\/$/, fail);
  await page.keyboard.press("n");
  await page.getByRole("alert").filter({ hasText: "StorageUnavailable" }).waitFor();
  await page.locator(".review-now").getByText(new RegExp(`^Face ${id}:`)).waitFor();
  await page.unroute(/\/face-crops\/\d+\/not-a-student\/$/, fail);
  await page.getByRole("alert").filter({ hasText: "StorageUnavailable" }).getByRole("button", { name: "Dismiss" }).click();
  await page.locator(".review-stage").focus();
  await page.keyboard.press("z");
  await page.getByText("Nothing to undo.").waitFor();
  assert.match(await progress(), /· 0 decided$/);
  // The 503 above was made on purpose.
  errors.splice(0, errors.length, ...errors.filter((e) => !/status of 503/.test(e)));
});

await step("review: not a student (N)", async () => {
  const id = await current();
  await page.keyboard.press("n");
  await page.waitForFunction((id) => !document.querySelector(".review-now").textContent.startsWith(`Face ${id}:`), id);
  assert.match(await progress(), /^2 of \d+ to review · 1 decided$/);
  decided.notStudent = id;
});

await step("review: pick another student by typing (P, then a name)", async () => {
  const id = await current();
  await page.keyboard.press("p");
  await page.keyboard.type("alex");
  await page.getByRole("option", { name: "Alex Lacamoire" }).waitFor();
  await page.keyboard.press("Enter");
  await page.waitForFunction((id) => !document.querySelector(".review-now").textContent.startsWith(`Face ${id}:`), id);
  decided.alex = id;
});

await step("review: a wrong pick is undone with Z", async () => {
  const id = await current();
  await page.keyboard.press("p");
  await page.keyboard.type("penny");
  await page.keyboard.press("Enter");
  await page.waitForFunction((id) => !document.querySelector(".review-now").textContent.startsWith(`Face ${id}:`), id);
  await page.keyboard.press("z");
  await page.locator(".review-now").getByText(new RegExp(`^Face ${id}:`)).waitFor();
  await page.getByText(`Undone: face ${id} is back as it was.`).waitFor();
  decided.undone = id;
  // Skip it (S), then go back (←) and forward again (→).
  await page.keyboard.press("s");
  await page.keyboard.press("ArrowLeft");
  await page.locator(".review-now").getByText(new RegExp(`^Face ${id}:`)).waitFor();
  await page.keyboard.press("ArrowRight");
});

await step("review: accept the suggestions (Enter) of the next faces that have one", async () => {
  decided.accepted = [];
  for (let k = 0; k < 40 && decided.accepted.length < 3; k++) {
    const id = await current();
    const suggestion = await page.locator(".suggestion").innerText();
    const m = suggestion.match(/^Suggestion: (.+?)( \(similarity|$)/);
    if (!m) { await page.keyboard.press("s"); await page.waitForFunction((id) => !document.querySelector(".review-now").textContent.startsWith(`Face ${id}:`), id); continue; }
    await page.keyboard.press("Enter");
    await page.waitForFunction((id) => { const n = document.querySelector(".review-now"); return !n || !n.textContent.startsWith(`Face ${id}:`); }, id);
    decided.accepted.push([id, m[1]]);
  }
  assert.equal(decided.accepted.length, 3);
  await shot("07-review-after-actions");
});

await step("review: the server has every decision, and the CSV reflects them", async () => {
  const names = Object.fromEntries((await api("GET", `/attendance/students/?course=${courseId}&page_size=500`)).results.map((s) => [s.name, s.id]));
  let byId;
  for (let i = 0; i < 50; i++) {
    byId = Object.fromEntries((await api.crops(sessionId)).map((c) => [c.id, c]));
    if (byId[decided.accepted[2][0]].assignment_source === "manual") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(byId[decided.notStudent].not_a_student, true);
  assert.equal(byId[decided.alex].student, names["Alex Lacamoire"]);
  assert.equal(byId[decided.alex].assignment_source, "manual");
  assert.notEqual(byId[decided.undone].assignment_source, "manual");
  assert.notEqual(byId[decided.undone].student, names.Penny);
  for (const [id, name] of decided.accepted) {
    assert.equal(byId[id].student, names[name], `face ${id}`);
    assert.equal(byId[id].assignment_source, "manual");
  }
  await page.goto(`${base}/#/sessions/${sessionId}`);
  await page.locator("#attendance").getByRole("row", { name: /Alex Lacamoire/ }).locator("td.status-present").waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download CSV" }).click()]);
  const file = path.join(artifacts, "session.csv");
  await download.saveAs(file);
  const rows = fs.readFileSync(file, "utf8").trim().split("\n");
  assert.equal(rows[0], "student_id,external_id,name,status,source,evidence_crops");
  const alex = rows.find((r) => r.includes(",Alex Lacamoire,"));
  assert.match(alex, /,Alex Lacamoire,present,/);
  assert.ok(alex.includes(String(decided.alex)), `Alex's evidence is the corrected face: ${alex}`);
  for (const name of ["Barack Obama", "Joe Biden", "Kit Harington", "Rose Leslie"]) {
    assert.ok(rows.some((r) => r.includes(`,${name},present,`)), `${name} present: ${rows.join(" | ")}`);
  }
});

await step("recognising again keeps the corrections of the review", async () => {
  await page.getByRole("button", { name: "Recognise again" }).click();
  await page.getByText(/Recognised again: \d+ of \d+ faces matched automatically\./).waitFor();
  await page.getByRole("button", { name: `Face ${decided.alex}: Alex Lacamoire` }).waitFor();
  await page.getByRole("button", { name: `Face ${decided.notStudent}: not a student` }).waitFor();
});

// ---------- the other pages ----------

await step("a page whose data arrives after the user left it is never shown, and its keys are gone", async () => {
  // The review's faces arrive late; meanwhile the user went on to the course page.
  const late = new RegExp(`/sessions/${sessionId}/face-crops/`);
  const slow = async (route) => { await new Promise((r) => setTimeout(r, 2500)); await route.continue().catch(() => {}); };
  await page.route(late, slow);
  await page.evaluate((id) => { location.hash = `#/sessions/${id}/review`; }, sessionId);
  await page.waitForTimeout(300);
  await page.evaluate((id) => { location.hash = `#/courses/${id}`; }, courseId);
  await page.getByRole("heading", { name: "Attendance matrix" }).waitFor();
  await page.waitForTimeout(3000);
  await page.unroute(late, slow);
  assert.equal(await page.locator("main h1").innerText(), "CS101 — Databases");
  assert.equal(await page.locator(".review-now").count(), 0);
  assert.match(await page.title(), /^CS101/);
  // Letters the review uses as keys (a, n, s, z, p) are text in a form.
  const field = page.getByLabel("Student name");
  await field.click();
  await page.keyboard.type("Anna Pazs");
  assert.equal(await field.inputValue(), "Anna Pazs");
  await field.fill("");
  // At 375 px too, a new page starts at the top.
  await page.setViewportSize({ width: 375, height: 800 });
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  assert.ok(await page.evaluate(() => window.scrollY) > 0);
  await page.locator("table.matrix td a").first().click();
  await page.getByRole("heading", { name: "Week 1" }).waitFor();
  assert.equal(await page.evaluate(() => window.scrollY), 0);
  await page.setViewportSize({ width: 1280, height: 900 });
});

await step("the course page: roster cards, search, edit with undo-able delete", async () => {
  await page.getByRole("link", { name: "CS101 — Databases" }).click();
  await page.getByRole("heading", { name: "Attendance matrix" }).waitFor();
  const card = page.getByRole("article", { name: "Alex Lacamoire" });
  await card.getByText(/100 % attendance · present 1 of 1/).waitFor();
  await page.getByLabel("Find a student").fill("rose");
  assert.equal(await page.locator(".student-card:visible").count(), 1);
  // A student added while searching is hidden too when the search does not match.
  await page.getByLabel("Student name").fill("Zed Visitor");
  await page.getByRole("button", { name: "Add student" }).click();
  await page.getByText("Zed Visitor added.").waitFor();
  assert.equal(await page.locator(".student-card:visible").count(), 1);
  await page.getByLabel("Find a student").fill("");
  await checkPage(ctx, "08-course", () => page.getByRole("heading", { name: "Attendance matrix" }).waitFor());
  // Edit a student: only the card is drawn again, focus back on its Edit button.
  const raj = page.getByRole("article", { name: "Raj" });
  await raj.getByRole("button", { name: "Edit" }).click();
  await raj.getByLabel("Student number").fill("S-0042");
  await raj.getByRole("button", { name: "Save" }).click();
  await raj.getByText("S-0042").waitFor();
  await page.waitForFunction(() => document.activeElement.textContent === "Edit", null, { timeout: 5000 });
  // Delete, then undo: the student is still there on the server.
  await page.getByRole("article", { name: "Raj" }).getByRole("button", { name: "Delete" }).click();
  await page.getByRole("dialog").waitFor();
  await axe(page, "the confirm dialog");
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await page.getByRole("status").filter({ hasText: "Raj deleted." }).getByRole("button", { name: "Undo" }).click();
  await page.getByRole("article", { name: "Raj" }).waitFor();
  await page.waitForTimeout(6500);
  const still = (await api("GET", `/attendance/students/?course=${courseId}&page_size=500`)).results.map((s) => s.name);
  assert.ok(still.includes("Raj"), still.join(", "));
  // A matrix cell opens its session.
  await page.locator("table.matrix td a").first().click();
  await page.getByRole("heading", { name: "Week 1" }).waitFor();
  // A new page starts at the top.
  assert.equal(await page.evaluate(() => window.scrollY), 0);
});

await step("naming a group: Undo puts its faces back, and named faces are not reviewed again", async () => {
  // A second session with one photo twice (as different files): its unknown face makes a group.
  const week2 = await api("POST", "/attendance/sessions/", { course: courseId, title: "Week 2", held_at: "2026-01-08T09:00:00Z" });
  const photo = fs.readFileSync(path.join(faces, "test_obama_and_biden.jpg"));
  await api("POST", `/attendance/sessions/${week2.id}/images/`, api.buffers([0, 1].map((k) => [`copy-${k}.jpg`, Buffer.concat([photo, Buffer.alloc(k + 1, k)])])));
  assert.equal((await api.process(week2.id)).status, "succeeded");
  const sessionId = week2.id;
  await page.goto(`${base}/#/courses/${courseId}`);
  await page.getByRole("heading", { name: "Unknown faces, grouped" }).waitFor();
  const groups = (await api("GET", `/attendance/courses/${courseId}/clusters/`)).filter((c) => c.members.length);
  assert.ok(groups.length > 0, "no group of unknown faces to name");
  const members = groups[0].members;
  const howardCard = page.getByRole("article", { name: "Howard" });
  const present = async () => Number((await howardCard.locator(".rate").innerText()).match(/present (\d+) of/)[1]);
  const wasPresent = await present();
  await page.getByLabel("Name group 1 as").selectOption({ label: "Howard" });
  await page.locator(".cluster").first().getByRole("button", { name: "Assign group" }).click();
  const note = page.getByRole("status").filter({ hasText: "assigned to Howard" });
  await note.waitFor();
  // The card's attendance rate is drawn again.
  await howardCard.locator(".rate").getByText(`present ${wasPresent + 1} of`).waitFor();
  let byId = Object.fromEntries((await api.crops(sessionId)).map((c) => [c.id, c]));
  for (const m of members) assert.equal(byId[m].assignment_source, "cluster", `face ${m}`);
  await note.getByRole("button", { name: "Undo" }).click();
  await page.getByText(/faces? back as (they|it) were/).first().waitFor({ timeout: T });
  byId = Object.fromEntries((await api.crops(sessionId)).map((c) => [c.id, c]));
  for (const m of members) {
    assert.equal(byId[m].student, null, `face ${m}`);
    assert.notEqual(byId[m].assignment_source, "cluster", `face ${m}`);
  }
  // Named again (through the API): the review leaves those faces out, a person decided them.
  const again = (await api("GET", `/attendance/courses/${courseId}/clusters/`)).filter((c) => c.members.length);
  assert.ok(again.length > 0, "the faces were not grouped again after the undo");
  const howard = (await api("GET", `/attendance/students/?course=${courseId}&page_size=500`)).results.find((x) => x.name === "Howard").id;
  await api("POST", `/attendance/clusters/${again[0].id}/name/`, { student_id: howard });
  const all = await api.crops(sessionId);
  assert.ok(all.some((c) => c.assignment_source === "cluster"));
  const todo = all.filter((c) => !c.not_a_student && !(c.assignment_source && c.assignment_source !== "auto")).length;
  await page.goto(`${base}/#/sessions/${sessionId}/review`);
  await page.locator(".review-now").waitFor();
  assert.match(await progress(), new RegExp(`^1 of ${todo} to review`));
});

await step("the home page: each course with what still needs review", async () => {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Courses" }).click();
  const card = page.locator(".course-card", { hasText: "CS101" });
  await card.getByText(/Week 1/).waitFor();
  await card.locator(".badge").first().waitFor();
  await checkPage(ctx, "02-home", () => card.locator(".badge").first().waitFor());
});

if (poison) {
  await step("a worker crash during processing shows a readable error", async () => {
    const s = await api("POST", "/attendance/sessions/", { course: courseId, title: "Crash", held_at: "2026-01-02T09:00:00Z" });
    await page.goto(`${base}/#/sessions/${s.id}`);
    await page.getByRole("heading", { name: "Crash" }).waitFor();
    await page.getByLabel("Photos to upload").setInputFiles([poison, path.join(faces, "examples__two_people.jpg")]);
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    await page.getByText("2 stored, 0 duplicate, 0 failed").waitFor({ timeout: T });
    await page.getByRole("button", { name: "Process photos" }).click();
    const status = page.locator("#job-status");
    await status.getByText(/WorkerCrashed: poison\.png: .*(SIGABRT|signal)/).waitFor({ timeout: T });
    await status.getByText(/Processing partial: 2 of 2 photos, 2 faces/).waitFor();
    await shot("09-worker-crash");
    // The crashed photo is deleted (after the few seconds in which Undo could keep it).
    await page.getByRole("button", { name: "Delete photo poison.png" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
    await page.getByRole("status").filter({ hasText: "Photo poison.png deleted." }).waitFor();
    for (let i = 0; ; i++) {
      const left = await api("GET", `/attendance/sessions/${s.id}/images/`);
      if (left.length === 1) { assert.equal(left[0].original_name, "examples__two_people.jpg"); break; }
      assert.ok(i < 100, `still ${left.length} photos`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await page.locator("figure.photo").first().waitFor();
    assert.equal(await page.locator("figure.photo").count(), 1);
  });
}

await step("no script errors", async () => {
  assert.deepEqual(errors.filter((e) => !/status of 4\d\d/.test(e)), []);
});

await browser.close();
console.log("all UI steps passed");
