// Drives AdReel Studio (the job API's dashboard) in Debian's headless Chromium for tests/fleet/test_dashboard.py.
//
//   node dashboard.mjs <input.json> <output.json>
//
// input.json: {url, key, artifacts, brand, product, edit, timeoutMs, csvPath, csvRows}. output.json: what the page showed.
// Only loopback is reachable: every other request is aborted (and recorded).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { chromium } = await import(path.join(HERE, "..", "browser", "node_modules", "playwright-core", "index.mjs"));

const [inputPath, outputPath] = process.argv.slice(2);
const input = JSON.parse(fs.readFileSync(inputPath, "utf8"));
fs.mkdirSync(input.artifacts, { recursive: true });
const out = { steps: [], console: [], pageErrors: [], blocked: [], statuses: [], progress: [] };
const step = (s) => { out.steps.push(`${new Date().toISOString()} ${s}`); save(); };
const save = () => fs.writeFileSync(outputPath, JSON.stringify(out, null, 1));
const shot = (page, name) => page.screenshot({ path: path.join(input.artifacts, name), fullPage: true });

const browser = await chromium.launch({
  executablePath: process.env.ADREEL_CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: "en-GB" });
  await context.route("**/*", (route) => {
    const u = route.request().url();
    if (u.startsWith(input.url) || u.startsWith("blob:") || u.startsWith("data:")) return route.continue();
    out.blocked.push(u);
    return route.abort("blockedbyclient");
  });
  const page = await context.newPage();
  page.on("console", (m) => out.console.push({ type: m.type(), text: m.text().slice(0, 2000) }));
  page.on("pageerror", (e) => out.pageErrors.push(String(e.message)));
  // every status and progress value the job's row shows, as the page changes it (no reload happens)
  await page.exposeFunction("adreelSaw", (status, progress) => {
    if (out.statuses.at(-1) !== status) out.statuses.push(status);
    if (out.progress.at(-1) !== progress) out.progress.push(progress);
  });

  const resp = await page.goto(input.url + "/", { waitUntil: "load" });
  out.pageUrl = page.url();
  out.csp = resp.headers()["content-security-policy"] || "";
  out.signedOutNotice = await page.textContent("#notice");
  await page.fill("#key", "wrong-key-0123456789abcdef");
  await page.click("#signin button");
  await page.waitForFunction(() => document.querySelector("#notice").textContent.length > 0);
  out.badKeyNotice = await page.textContent("#notice");
  await page.fill("#key", input.key);
  await page.click("#signin button");
  step("signed in");

  await page.fill("[name=brand]", input.brand);
  await page.fill("[name=product]", input.product);
  await page.fill("[name=cta]", "Try it today");
  await page.fill("[name=duration_seconds]", "6");
  await page.selectOption("[name=aspect_ratio]", "1:1");
  await page.selectOption("[name=resolution]", "180p");
  await page.click("#briefForm button[type=submit]");
  await page.waitForSelector("#jobRows tr[data-job]");
  out.jobId = await page.getAttribute("#jobRows tr[data-job]", "data-job");
  step(`submitted ${out.jobId}`);
  await page.evaluate((id) => {
    const seen = () => {
      const row = document.querySelector(`#jobRows tr[data-job="${id}"]`);
      if (row) window.adreelSaw(row.dataset.status, Number(row.dataset.progress));
    };
    seen();
    new MutationObserver(seen).observe(document.querySelector("#jobRows"), { childList: true, subtree: true, attributes: true });
  }, out.jobId);

  const row = `#jobRows tr[data-job="${out.jobId}"]`;
  await page.waitForSelector(`${row}[data-status=awaiting_approval] button.review`, { timeout: input.timeoutMs });
  step("awaiting approval");
  await page.click(`${row} button.review`);
  await page.waitForSelector("#sceneRows tr");
  out.scenes = await page.$$eval("#sceneRows tr", (rows) => rows.map((r) => ({
    onScreen: r.querySelector(".on-screen").value, narration: r.querySelector(".narration").value })));
  out.estimateText = await page.textContent("#estimate");
  await page.waitForFunction(() => [...document.querySelectorAll("#sceneRows img.key")].every((i) => i.complete && i.naturalWidth > 0),
                             null, { timeout: 30000 }).catch(() => {});
  out.keyImages = await page.$$eval("#sceneRows img.key", (imgs) => imgs.map((i) => [i.naturalWidth, i.naturalHeight]));
  await page.fill("#sceneRows tr[data-scene='0'] .on-screen", input.edit);
  await shot(page, "dashboard-approval.png");
  await page.click("#approve");
  await page.waitForSelector("#review", { state: "hidden" });
  step("approved");

  await page.waitForSelector(`${row}[data-status=succeeded] button.play`, { timeout: input.timeoutMs });
  step("succeeded");
  await page.click(`${row} button.play`);
  await page.waitForFunction(() => document.querySelector("#video").readyState >= 1 && document.querySelector("#video").duration > 0,
                             null, { timeout: 60000 });
  out.video = await page.evaluate(() => {
    const v = document.querySelector("#video");
    return { duration: v.duration, width: v.videoWidth, height: v.videoHeight, src: v.src.slice(0, 5) };
  });
  out.downloads = await page.$$eval("#downloads button", (bs) => bs.map((b) => b.textContent));
  await shot(page, "dashboard.png");

  await page.click("#lang");
  out.korean = { lang: await page.getAttribute("html", "lang"), brief: await page.textContent("#brief h2"),
                 jobs: await page.textContent("#jobs h2"), status: await page.textContent(`${row} .badge`),
                 play: await page.textContent(`${row} button.play`),
                 downloads: await page.$$eval("#downloads button", (bs) => bs.map((b) => b.textContent)) };
  await shot(page, "dashboard-ko.png");

  // a batch from a CSV file, on the Korean page: the file goes through the file picker, as a user gives it
  out.batchForm = { title: await page.textContent("#batchForm h3"), button: await page.textContent("#batchForm button"),
                    file: await page.textContent("#batchForm label:first-of-type span") };
  await page.setInputFiles("#batchForm [name=file]", input.csvPath);
  await page.fill("#batchForm [name=variants]", "1");
  await page.click("#batchForm button[type=submit]");
  await page.waitForFunction(() => /b[0-9a-f]{20}/.test(document.querySelector("#notice").textContent), null, { timeout: 30000 });
  out.batchNotice = await page.textContent("#notice");
  out.batchId = out.batchNotice.match(/b[0-9a-f]{20}/)[0];
  await page.waitForFunction((n) => document.querySelectorAll("#jobRows tr[data-job]").length >= n, input.csvRows + 1,
                             { timeout: 30000 });
  out.batchRows = await page.$$eval("#jobRows tr[data-job]", (rows) => rows.map((r) => ({
    id: r.dataset.job, status: r.dataset.status, brand: r.querySelector("td").textContent })));
  await shot(page, "dashboard-batch.png");
  step("done");
} catch (e) {
  out.error = String(e && e.stack || e);
} finally {
  save();
  await browser.close();
}
