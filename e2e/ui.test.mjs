// End-to-end test of the web UI in headless Chromium (Debian's /usr/bin/chromium), driven by
// crates/attendansee/tests/web_ui.rs, which starts the real server and passes:
//   node ui.test.mjs <base-url> <username> <password> <faces-dir> <artifacts-dir> [<poison-photo>]
// Every step asserts; any failure exits 1 with the reason and a screenshot of the page.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";

const [base, username, password, faces, artifacts, poison] = process.argv.slice(2);
fs.mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
// Loopback only: anything else would be a bug (the UI must not need the network).
await context.route((url) => !url.href.startsWith(base), (r) => { consoleErrors.push(`off-site request ${r.request().url()}`); r.abort(); });

const shot = (name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
const step = async (name, f) => {
  try { await f(); console.log(`ok - ${name}`); } catch (e) {
    await shot(`failed-${name.replace(/\W+/g, "-")}`).catch(() => {});
    console.error(`not ok - ${name}: ${e.stack || e}`);
    await browser.close();
    process.exit(1);
  }
};
const T = 60_000;

const people = {
  "Barack Obama": ["obama.jpg", "train_obama_obama2.jpg"],
  "Joe Biden": ["biden.jpg", "train_biden_biden2.jpg"],
  "Kit Harington": ["train_kit_harington_john1.jpeg", "train_kit_harington_john2.jpeg"],
  "Rose Leslie": ["train_rose_leslie_img1.jpg", "train_rose_leslie_img2.jpg"],
  "Alex Lacamoire": ["train_alex_lacamoire_img1.jpg"],
};
const groups = ["examples__two_people.jpg", "test_obama_and_biden.jpg", "test_kit_with_rose.jpg"];

await step("log in", async () => {
  await page.goto(base + "/");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await shot("01-login");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Courses", exact: true }).waitFor();
});

await step("a wrong action shows a readable error", async () => {
  await page.getByLabel("Course name").fill("Databases");
  await page.getByLabel("Code").fill("   ");
  await page.getByRole("button", { name: "Create course" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.innerText(), /ValidationError: code must not be empty/);
});

await step("create a course", async () => {
  await page.getByLabel("Code").fill("CS101");
  await page.getByRole("button", { name: "Create course" }).click();
  await page.getByRole("heading", { name: "CS101 — Databases" }).waitFor();
});

await step("enroll the students from their photos", async () => {
  for (const [name, photos] of Object.entries(people)) {
    await page.getByLabel("Student name").fill(name);
    await page.getByRole("button", { name: "Add student" }).click();
    const input = page.getByLabel(`Reference photos for ${name}`);
    await input.waitFor();
    await input.setInputFiles(photos.map((p) => path.join(faces, p)));
    await page.getByRole("row", { name: new RegExp(name) }).getByText(`${photos.length} stored`).waitFor({ timeout: T });
  }
  await page.getByAltText("Reference face of Alex Lacamoire").first().waitFor();
  await shot("02-course-students");
});

await step("create a session and upload the group photos", async () => {
  await page.getByLabel("Session title").fill("Week 1");
  await page.getByRole("button", { name: "Create session" }).click();
  await page.getByRole("heading", { name: "Week 1" }).waitFor();
  await page.getByLabel("Photos").setInputFiles(groups.map((p) => path.join(faces, p)));
  await page.getByRole("button", { name: "Upload" }).click();
  await page.getByText("3 stored, 0 duplicate, 0 failed").waitFor({ timeout: T });
});

await step("process and see the faces boxed", async () => {
  await page.getByRole("button", { name: "Process photos" }).click();
  await page.locator(".face-box").first().waitFor({ timeout: T });
  // 2 + 3 + 2 faces (test_obama_and_biden.jpg shows a third, unlabelled person).
  assert.equal(await page.locator(".face-box").count(), 7);
  assert.equal(await page.locator(".face-box.assigned").count(), 6);
  await page.getByRole("table").filter({ hasText: "Override" }).waitFor();
  // The grid shows the previews the workers made while processing, not the original files.
  const sources = await page.locator("figure.photo img").evaluateAll((imgs) => imgs.map((i) => i.dataset.src));
  assert.equal(sources.length, 3);
  for (const src of sources) assert.match(src, /^\/attendance\/images\/\d+\/preview\/$/);
  await page.waitForFunction(() => {
    const img = document.querySelector("figure.photo img");
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: T });
  await shot("03-session-processed");
});

await step("a face shows its crop, embeddings and why it was assigned", async () => {
  await page.getByRole("button", { name: /: Barack Obama$/ }).first().click();
  const panel = page.locator("#face-panel");
  await panel.getByText(/matched: above the threshold/).waitFor();
  await panel.getByText(/Best: Barack Obama \(0\.\d+\); runner-up: .+ \(0?-?\d?\.\d+\)/).waitFor();
  await panel.getByText("Embeddings: mobilefacenet (128-D)").waitFor();
  await shot("04-face-panel");
});

await step("correct one assignment by hand", async () => {
  // The unidentified girl of test_obama_and_biden.jpg becomes Alex Lacamoire (a deliberate
  // correction: she is nobody enrolled), and stays so.
  const unknownFace = page.getByRole("button", { name: /: unknown$/ });
  assert.equal(await unknownFace.count(), 1);
  const id = (await unknownFace.getAttribute("data-face"));
  await unknownFace.click();
  const panel = page.locator("#face-panel");
  await panel.getByText(`Face ${id}:`).waitFor();
  await panel.getByLabel("Assign to").selectOption({ label: "Alex Lacamoire" });
  await panel.getByRole("button", { name: "Assign", exact: true }).click();
  await page.getByRole("button", { name: /: Alex Lacamoire$/ }).waitFor();
  await page.getByText("Every face is identified.").waitFor();
});

await step("recognising again keeps the correction", async () => {
  await page.getByRole("button", { name: "Recognise again" }).click();
  await page.getByText(/Recognised again: 6 of 6 faces matched automatically\./).waitFor();
  await page.getByRole("button", { name: /: Alex Lacamoire$/ }).waitFor();
});

await step("attendance lists who was there, with evidence", async () => {
  const table = page.locator("#attendance");
  for (const name of Object.keys(people)) {
    await table.getByRole("row", { name: new RegExp(name) }).getByText("present").first().waitFor();
  }
  await page.getByText("5 present · 0 absent · 0 unknown").waitFor();
  await shot("05-attendance");
});

await step("download the CSV and check its rows", async () => {
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download CSV" }).click(),
  ]);
  const file = path.join(artifacts, "session.csv");
  await download.saveAs(file);
  const rows = fs.readFileSync(file, "utf8").trim().split("\n");
  assert.equal(rows[0], "student_id,external_id,name,status,source,evidence_crops");
  assert.equal(rows.length, 6);
  for (const name of Object.keys(people)) {
    assert.ok(rows.some((r) => r.includes(`,${name},present,auto,`)), `${name} present: ${rows.join(" | ")}`);
  }
});

await step("the course page shows the matrix", async () => {
  await page.getByRole("link", { name: /← CS101/ }).click();
  await page.getByRole("heading", { name: "Attendance matrix" }).waitFor();
  await shot("06-course-matrix");
});

await step("usable at 375 px wide", async () => {
  await page.setViewportSize({ width: 375, height: 800 });
  await page.getByRole("link", { name: "Week 1" }).click();
  await page.locator(".face-box").first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await shot("07-session-375px");
  await page.setViewportSize({ width: 1280, height: 900 });
});

await step("keyboard: a face can be opened without a mouse", async () => {
  const face = page.getByRole("button", { name: /: Joe Biden$/ }).first();
  const id = await face.getAttribute("data-face");
  await face.focus();
  await page.keyboard.press("Enter");
  await page.locator("#face-panel").getByText(`Face ${id}: Joe Biden`).waitFor();
});

if (poison) {
  await step("a worker crash during processing shows a readable error", async () => {
    await page.getByRole("link", { name: /← CS101/ }).click();
    await page.getByLabel("Session title").fill("Crash");
    await page.getByRole("button", { name: "Create session" }).click();
    await page.getByRole("heading", { name: "Crash" }).waitFor();
    await page.getByLabel("Photos").setInputFiles([poison, path.join(faces, "examples__two_people.jpg")]);
    await page.getByRole("button", { name: "Upload" }).click();
    await page.getByText("2 stored, 0 duplicate, 0 failed").waitFor({ timeout: T });
    await page.getByRole("button", { name: "Process photos" }).click();
    const status = page.locator("#job-status");
    await status.getByText(/WorkerCrashed: poison\.png: .*(SIGABRT|signal)/).waitFor({ timeout: T });
    // A job with a failed photo is "partial", not "succeeded".
    await status.getByText(/Processing partial: 2 of 2 photos, 2 faces/).waitFor();
    await shot("08-worker-crash");
  });
}

await step("no script errors", async () => {
  assert.deepEqual(consoleErrors.filter((e) => !/status of 4\d\d/.test(e)), []);
});

await browser.close();
console.log("all UI steps passed");
