// Shared by the browser tests: the browser, steps that stop at the first failure with a
// screenshot, a small API client for setting up data quickly, the accessibility scan (axe-core)
// and the checks every page gets at 375 and 1280 px.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export const T = 60_000;

export async function open(base, artifacts) {
  fs.mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  // Loopback only: anything else would be a bug (the UI must not need the network).
  await context.route((url) => !url.href.startsWith(base), (r) => { errors.push(`off-site request ${r.request().url()}`); r.abort(); });
  const shot = (name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
  const step = async (name, f) => {
    const t0 = Date.now();
    try { await f(); console.log(`ok - ${name} (${Date.now() - t0} ms)`); } catch (e) {
      await shot(`failed-${name.replace(/\W+/g, "-")}`).catch(() => {});
      console.error(`not ok - ${name}: ${e.stack || e}`);
      await browser.close();
      process.exit(1);
    }
  };
  return { browser, context, page, errors, shot, step };
}

export async function login(page, base, username, password) {
  await page.goto(base + "/");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Courses", exact: true }).waitFor();
}

/** The JSON API from node, for setting up data the browser test is not about. */
export async function apiClient(base, username, password) {
  const call = async (method, p, body, token) => {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload = body;
    if (body && !(body instanceof FormData)) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
    const r = await fetch(`${base}/api${p}`, { method, headers, body: payload });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return r.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text;
  };
  const { token } = await call("POST", "/auth/login/", { username, password });
  const api = (method, p, body) => call(method, p, body, token);
  api.files = (paths, names) => {
    const form = new FormData();
    paths.forEach((p, i) => form.append("images", new Blob([fs.readFileSync(p)]), names ? names[i] : path.basename(p)));
    return form;
  };
  api.buffers = (items) => {
    const form = new FormData();
    for (const [name, bytes] of items) form.append("images", new Blob([bytes]), name);
    return form;
  };
  /** Processes a session and waits for its job. */
  api.process = async (session) => {
    const { job } = await api("POST", `/attendance/sessions/${session}/process/`);
    for (;;) {
      const j = await api("GET", `/attendance/jobs/${job.id}/`);
      if (["succeeded", "partial", "failed", "cancelled"].includes(j.status)) return j;
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  api.crops = async (session) => (await api("GET", `/attendance/sessions/${session}/face-crops/?page_size=500`)).results;
  return api;
}

/** axe-core over the page as it is: no serious or critical violation. */
export async function axe(page, where) {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
  assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`), [], `axe on ${where}`);
  return result.violations.length;
}

/** No horizontal overflow: nothing wider than the screen. */
export async function noOverflow(page, where) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${where}: the page is ${overflow}px wider than the screen`);
}

/**
 * The keyboard focus ring: tabs to a control of the page and checks that its outline contrasts
 * ≥ 3:1 with what is around it and is not the colour of unknown faces.
 */
export async function focusRing(page, where) {
  await page.locator("main h1").focus();
  await page.keyboard.press("Tab");
  const r = await page.evaluate(() => {
    const el = document.activeElement;
    const rgb = (c) => (c.match(/[\d.]+/g) || []).slice(0, 4).map(Number);
    const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
    let bgEl = el.parentElement; let bg = [255, 255, 255];
    while (bgEl) { const c = rgb(getComputedStyle(bgEl).backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) { bg = c; break; } bgEl = bgEl.parentElement; }
    const style = getComputedStyle(el);
    const ring = rgb(style.outlineColor);
    const probe = document.createElement("span"); probe.style.color = "var(--unknown)"; document.body.append(probe);
    const unknown = getComputedStyle(probe).color; probe.remove();
    const [a, b] = [lum(ring), lum(bg)].sort((x, y) => y - x);
    return { tag: el.tagName, text: el.textContent.slice(0, 30), width: style.outlineWidth, style: style.outlineStyle, ring: style.outlineColor, unknown, contrast: (a + 0.05) / (b + 0.05) };
  });
  assert.ok(r.style !== "none" && parseFloat(r.width) >= 2, `${where}: no visible focus on ${r.tag} ${r.text}: ${JSON.stringify(r)}`);
  assert.ok(r.contrast >= 3, `${where}: focus contrast ${r.contrast.toFixed(2)}: ${JSON.stringify(r)}`);
  assert.notEqual(r.ring, r.unknown, `${where}: focus has the colour of unknown faces`);
}

/**
 * Every page check at both widths and in dark mode: screenshot, no overflow, axe, the focus
 * ring. `ready` waits for the page's content after a change of size or colours.
 */
export async function checkPage(ctx, name, ready) {
  const { page, shot } = ctx;
  for (const [width, scheme] of [[1280, "light"], [375, "light"], [1280, "dark"]]) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.setViewportSize({ width, height: width === 375 ? 800 : 900 });
    if (ready) await ready();
    await page.waitForTimeout(150);
    const where = `${name} at ${width}px${scheme === "dark" ? " in dark mode" : ""}`;
    await noOverflow(page, where);
    await shot(`${name}-${width}${scheme === "dark" ? "-dark" : ""}`);
    await axe(page, where);
    if (width === 1280) await focusRing(page, where);
  }
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 1280, height: 900 });
}

/** The face box's panel is inside the viewport after clicking the box. */
export async function panelInView(page, where) {
  const panel = page.locator("#face-panel");
  await panel.getByText(/^Face \d+:/).waitFor();
  const inside = await panel.evaluate((el) => {
    const r = el.getBoundingClientRect();
    return r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight + 1 && r.right <= window.innerWidth + 1 && r.height > 0;
  });
  assert.ok(inside, `${where}: the face panel is outside the viewport`);
}
