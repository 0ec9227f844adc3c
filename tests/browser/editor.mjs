// Drives the real ComfyUI frontend in headless Chromium for tests/browser/test_editor.py.
//
//   node editor.mjs <input.json> <output.json>
//
// input.json (written by the pytest side): {url, artifacts, viewport: [w, h], module, workflows: [{name, ui}], demo: {...},
// motionCases: [...], providerCases: [...], badErrorCase, roundTrip: bool, korean: bool}.
// output.json: everything the page showed, for the Python side to assert on.
// Only loopback is reachable: every other request is aborted (and recorded).
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [inputPath, outputPath] = process.argv.slice(2);
const input = JSON.parse(fs.readFileSync(inputPath, "utf8"));
const ART = input.artifacts;
fs.mkdirSync(ART, { recursive: true });
const out = { phases: {}, workflows: {}, console: [], pageErrors: [], blocked: [], steps: [] };
let phase = "startup";
const step = (s) => { out.steps.push(`${new Date().toISOString()} ${s}`); };
const save = () => fs.writeFileSync(outputPath, JSON.stringify(out, null, 1));

const CHROMIUM = process.env.ADREEL_CHROMIUM || "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"];

function isLoopback(u) {
  try {
    const h = new URL(u).hostname;
    return h === "127.0.0.1" || h === "localhost" || h === "[::1]" || h.startsWith("127.");
  } catch { return u.startsWith("data:") || u.startsWith("blob:"); }
}

async function openPage(browser) {
  const [width, height] = input.viewport || [1600, 1000];
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
  await context.route("**/*", (route) => {
    const u = route.request().url();
    if (isLoopback(u) || u.startsWith("data:") || u.startsWith("blob:")) return route.continue();
    out.blocked.push(u);
    return route.abort("blockedbyclient");
  });
  const page = await context.newPage();
  page.on("console", (m) => {
    const loc = m.location() || {};
    out.console.push({ phase, type: m.type(), text: m.text().slice(0, 4000), url: loc.url || "" });
  });
  page.on("pageerror", (e) => out.pageErrors.push({ phase, message: String(e.message), stack: String(e.stack || "").slice(0, 2000) }));
  return { context, page };
}

async function waitForApp(page) {
  await page.goto(input.url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.app?.graph && window.app?.canvas && window.comfyAPI?.api?.api
    && window.app.extensions?.some((e) => e.name === "AdReel.Editor"), null, { timeout: 120000 });
  await page.waitForTimeout(1500);
  // first-run banners and the minimap would cover the canvas in screenshots
  await dismissBanner(page);
}

async function dismissBanner(page) {
  // the frontend's "Introducing Nodes 2.0" announcement bar: its close button
  await page.evaluate(() => {
    const text = [...document.querySelectorAll("body *")].find((e) => e.children.length === 0 && /Introducing Nodes 2\.0/.test(e.textContent));
    for (let p = text?.parentElement, i = 0; p && i < 6; p = p.parentElement, i++) {
      const buttons = p.querySelectorAll("button");
      if (buttons.length >= 2) { buttons[buttons.length - 1].click(); return; }
    }
  });
  await page.waitForTimeout(300);
}

/** A few animation frames: the canvas, and the DOM widgets placed with it, have drawn the latest change
 * (waits for the page itself instead of a fixed sleep). */
async function settle(page, frames = 3) {
  await page.evaluate((n) => new Promise((res) => {
    let k = 0;
    const tick = () => (++k >= n ? res() : requestAnimationFrame(tick));
    requestAnimationFrame(tick);
    setTimeout(res, 2000);  // a page that draws no frames (hidden) still goes on
  }), frames);
}

/** Load a UI workflow as the editor's own loader does and wait until its nodes are in the graph and drawn
 * (plus a short grace for anything the frontend shows after loading, e.g. a missing-nodes dialog). */
async function loadWorkflow(page, wf) {
  await page.evaluate(async ({ ui, name }) => { await window.app.loadGraphData(ui, true, true, name); }, wf);
  await page.waitForFunction((n) => window.app.graph.nodes.length === n, wf.ui.nodes.length, { timeout: 20000, polling: 50 })
    .catch(() => {});
  await page.waitForTimeout(300);
  await settle(page);
}

/** Fit the whole graph in view (the editor's own command). */
async function fitView(page) {
  await page.evaluate(async () => { await window.app.extensionManager.command.execute("Comfy.Canvas.FitView"); });
  await settle(page);
}

/** The graph's bounding box on the page, [x, y, w, h], and each node's. */
async function graphBox(page) {
  return await page.evaluate(() => {
    const c = window.app.canvas, r = c.canvas.getBoundingClientRect(), t = window.LiteGraph.NODE_TITLE_HEIGHT;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    const nodes = [];
    for (const n of window.app.graph.nodes) {
      const [ax, ay] = c.ds.convertOffsetToCanvas([n.pos[0], n.pos[1] - t]);
      const [bx, by] = c.ds.convertOffsetToCanvas([n.pos[0] + n.size[0], n.pos[1] + n.size[1]]);
      x0 = Math.min(x0, ax); y0 = Math.min(y0, ay); x1 = Math.max(x1, bx); y1 = Math.max(y1, by);
      nodes.push({ type: n.type, box: [Math.round(r.left + ax), Math.round(r.top + ay), Math.round(bx - ax), Math.round(by - ay)] });
    }
    return { box: [Math.round(r.left + x0), Math.round(r.top + y0), Math.round(x1 - x0), Math.round(y1 - y0)], nodes };
  });
}

/** Centre the canvas on a node at a zoom level. */
async function focusNode(page, nodeId, scale = 1.1) {
  await page.evaluate(({ nodeId, scale }) => {
    const n = window.app.graph.getNodeById(nodeId);
    const ds = window.app.canvas.ds;
    ds.scale = scale;
    ds.offset[0] = -n.pos[0] + 140 / scale;
    ds.offset[1] = -n.pos[1] + 150 / scale;
    window.app.canvas.setDirty(true, true);
  }, { nodeId, scale });
  await settle(page);
}

/** What the editor made of a loaded workflow: missing nodes, widget problems, dialogs. */
async function inspectGraph(page, ui) {
  return await page.evaluate((ui) => {
    const LG = window.LiteGraph;
    const g = window.app.graph;
    const missing = [], widgetProblems = [];
    const saved = g.serialize();
    for (const fileNode of ui.nodes) {
      const node = g.getNodeById(fileNode.id);
      if (!node) { missing.push({ id: fileNode.id, type: fileNode.type, why: "not in the graph" }); continue; }
      if (!LG.registered_node_types[fileNode.type] || !node.constructor.nodeData) {
        missing.push({ id: fileNode.id, type: fileNode.type, why: "type not registered" });
        continue;
      }
      if (node.has_errors) {
        // newer frontends flag a core loader whose model file is not installed: say which values are missing
        const ours = String(node.constructor.nodeData?.category || "").startsWith("AdReel");
        const missingModels = (node.widgets || []).filter((w) => w.type === "combo" && Array.isArray(w.options?.values)
          && !w.options.values.includes(w.value)).map((w) => ({ name: w.name, value: w.value }));
        missing.push({ id: fileNode.id, type: fileNode.type, why: "has_errors", ours, missingModels });
      }
      const mine = saved.nodes.find((n) => n.id === fileNode.id);
      const want = fileNode.widgets_values || [];
      const got = mine?.widgets_values || [];
      if (want.length !== got.length) {
        widgetProblems.push({ id: fileNode.id, type: fileNode.type, problem: `the file has ${want.length} widget values, the node ${got.length}`, file: want, editor: got });
      } else {
        want.forEach((v, i) => {
          if (JSON.stringify(v) !== JSON.stringify(got[i])) widgetProblems.push({ id: fileNode.id, type: fileNode.type, problem: `widget value ${i} changed on load`, file: v, editor: got[i] });
        });
      }
      // combos of the pack's nodes (a core loader's model file that is not installed is the user's to fetch)
      const ours = String(node.constructor.nodeData?.category || "").startsWith("AdReel");
      for (const w of ours ? node.widgets || [] : []) {
        const values = w.options?.values;
        if (w.type === "combo" && Array.isArray(values) && !values.includes(w.value)) {
          widgetProblems.push({ id: fileNode.id, type: fileNode.type, problem: `${w.name}: ${JSON.stringify(w.value)} is not one of its options` });
        }
      }
    }
    const dialogs = [...document.querySelectorAll(".p-dialog")].filter((d) => d.offsetParent !== null).map((d) => d.innerText.slice(0, 500));
    return { missing, widgetProblems, dialogs, nodeCount: g.nodes.length, links: Object.keys(g.links || {}).length };
  }, ui);
}

async function closeDialogs(page) {
  for (let i = 0; i < 3; i++) {
    const open = page.locator(".p-dialog:visible");
    if (!(await open.count())) return;
    await page.keyboard.press("Escape");
    await page.waitForTimeout(300);
  }
}

async function runAndWait(page, { timeoutMs = 300000 } = {}) {
  await page.evaluate((timeoutMs) => {
    const api = window.comfyAPI.api.api;
    const state = (window.__adreelRun = { done: false });
    const finish = (r) => { if (!state.done) Object.assign(state, r, { done: true }); };
    api.addEventListener("execution_success", (e) => finish({ ok: true, prompt_id: e.detail?.prompt_id }), { once: true });
    api.addEventListener("execution_error", (e) => finish({ ok: false, error: e.detail }), { once: true });
    setTimeout(() => finish({ ok: false, error: "timeout" }), timeoutMs);
  }, timeoutMs);
  // queue like a user: the Run button; a prompt the server refuses ends the wait at once
  const posted = page.waitForResponse((r) => r.url().endsWith("/api/prompt") && r.request().method() === "POST", { timeout: 30000 });
  await page.locator('[data-testid="queue-button"]').first().click();
  const resp = await posted;
  if (resp.status() !== 200) {
    let body = null;
    try { body = await resp.json(); } catch {}
    return { ok: false, status: resp.status(), error: body };
  }
  await page.waitForFunction(() => window.__adreelRun.done, null, { timeout: timeoutMs + 5000, polling: 250 });
  const r = await page.evaluate(() => window.__adreelRun);
  // the outputs reached the nodes before execution_success; the readers below wait for images and videos
  await settle(page);
  return r;
}

/** The storyboard panel of a node as the page shows it. */
async function readPanel(page, nodeId) {
  return await page.evaluate(async (nodeId) => {
    const el = document.querySelector(`.adreel-storyboard[data-node-id="${nodeId}"]`);
    if (!el) return null;
    const rows = [...el.querySelectorAll(".adreel-row")];
    const imgs = rows.map((r) => r.querySelector(".adreel-thumb img"));
    await Promise.all(imgs.filter(Boolean).map((i) => (i.complete ? null : new Promise((res) => { i.onload = i.onerror = res; }))));
    const rect = el.getBoundingClientRect();
    return {
      visible: rect.width > 0 && rect.height > 0 && el.offsetParent !== null,
      head: el.querySelector(".adreel-head")?.innerText || "",
      rows: rows.map((r, i) => ({
        index: Number(r.dataset.index),
        time: r.querySelector(".adreel-time")?.textContent || "",
        segment: r.querySelector(".adreel-segment")?.value || "",
        narration: r.querySelector('[data-field="narration"]')?.value ?? null,
        on_screen_text: r.querySelector('[data-field="on_screen_text"]')?.value ?? null,
        image_prompt: r.querySelector('[data-field="image_prompt"]')?.value ?? null,
        thumb: imgs[i] ? { src: imgs[i].getAttribute("src"), w: imgs[i].naturalWidth, h: imgs[i].naturalHeight } : null,
      })),
      status: el.querySelector(".adreel-status")?.textContent || "",
      sendEnabled: !!el.querySelector(".adreel-send:not([disabled])"),
    };
  }, nodeId);
}

async function readVideoPreview(page, filename) {
  // ComfyUI's own preview of ui images with animated [true]: a <video> in the node
  await page.waitForFunction((f) => [...document.querySelectorAll("video")].some((v) => (v.currentSrc || v.src).includes(encodeURIComponent(f)) || (v.currentSrc || v.src).includes(f)), filename, { timeout: 30000 }).catch(() => {});
  return await page.evaluate(async (f) => {
    const v = [...document.querySelectorAll("video")].find((v) => (v.currentSrc || v.src).includes(f) || (v.currentSrc || v.src).includes(encodeURIComponent(f)));
    if (!v) return { missing: true, videos: [...document.querySelectorAll("video")].map((x) => x.currentSrc || x.src || x.innerHTML.slice(0, 200)),
                     images: [...document.querySelectorAll("img")].map((x) => x.src).filter((x) => x.includes("/view")).slice(0, 20) };
    if (v.readyState < 2) await new Promise((res) => { v.addEventListener("loadeddata", res, { once: true }); setTimeout(res, 15000); });
    const r = v.getBoundingClientRect();
    return { src: v.currentSrc || v.src, readyState: v.readyState, width: v.videoWidth, height: v.videoHeight, duration: v.duration,
             visible: r.width > 20 && r.height > 20 && v.offsetParent !== null, box: [r.x, r.y, r.width, r.height] };
  }, filename);
}

async function readClipPreview(page, nodeId) {
  await page.waitForFunction((id) => {
    const n = window.app.graph.getNodeById(id);
    return n?.adreelClip?.el.dataset.state === "playing";
  }, nodeId, { timeout: 15000 }).catch(() => {});
  return await page.evaluate((id) => {
    const n = window.app.graph.getNodeById(id);
    const c = n?.adreelClip;
    if (!c) return null;
    const cv = c.canvas;
    const ctx = cv.getContext("2d");
    const d = ctx.getImageData(0, 0, cv.width, cv.height).data;
    let sum = 0, nonBlack = 0;
    for (let i = 0; i < d.length; i += 4) { const y = d[i] + d[i + 1] + d[i + 2]; sum += y; if (y > 30) nonBlack++; }
    return { state: c.el.dataset.state, clips: Number(c.el.dataset.clips || 0), caption: c.caption.textContent,
             width: cv.width, height: cv.height, nonBlackFraction: nonBlack / (d.length / 4) };
  }, nodeId);
}

async function setWidget(page, nodeId, name, value) {
  await page.evaluate(({ nodeId, name, value }) => {
    const n = window.app.graph.getNodeById(nodeId);
    const w = n.widgets.find((w) => w.name === name);
    w.value = value;
    w.callback?.(value, window.app.canvas, n);
    window.app.graph.setDirtyCanvas(true, true);
  }, { nodeId, name, value });
}

async function screenshotNode(page, nodeId, file, { scale = 1.1, pad = 16 } = {}) {
  await focusNode(page, nodeId, scale);
  const box = await page.evaluate(({ nodeId, pad }) => {
    const n = window.app.graph.getNodeById(nodeId);
    const c = window.app.canvas;
    const rect = c.canvas.getBoundingClientRect();
    const title = window.LiteGraph.NODE_TITLE_HEIGHT;
    const [x, y] = c.ds.convertOffsetToCanvas([n.pos[0], n.pos[1] - title]);
    const s = c.ds.scale;
    return { x: Math.max(0, rect.left + x - pad), y: Math.max(0, rect.top + y - pad), width: n.size[0] * s + 2 * pad, height: (n.size[1] + title) * s + 2 * pad };
  }, { nodeId, pad });
  const vp = page.viewportSize();
  box.width = Math.min(box.width, vp.width - box.x);
  box.height = Math.min(box.height, vp.height - box.y);
  await page.screenshot({ path: file, clip: box });
  return box;
}

// ------------------------------------------------------------------------------------------------

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
try {
  const { page } = await openPage(browser);
  step("open editor");
  await waitForApp(page);
  out.frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ || null);
  out.extensions = await page.evaluate(() => window.app.extensions.map((e) => e.name));
  out.registered = await page.evaluate(() => Object.keys(window.LiteGraph.registered_node_types).filter((t) => window.LiteGraph.registered_node_types[t].nodeData?.category?.startsWith("AdReel")));
  await page.screenshot({ path: path.join(ART, "editor_startup.png") });
  save();

  // 1. every shipped UI-format workflow: open, inspect, screenshot, graphToPrompt
  for (const wf of input.workflows) {
    phase = `load:${wf.name}`;
    step(phase);
    await loadWorkflow(page, wf);
    const info = await inspectGraph(page, wf.ui);
    await fitView(page);
    const shot = path.join(ART, `workflow_${wf.name}.png`);
    await page.screenshot({ path: shot });
    Object.assign(info, await graphBox(page));
    const prompt = await page.evaluate(async () => (await window.app.graphToPrompt()).output);
    out.workflows[wf.name] = { ...info, screenshot: shot, prompt };
    await closeDialogs(page);
    save();
  }

  // 2. the motion preview draws what the engine renders (same frame, same camera)
  phase = "motion";
  out.motion = [];
  for (const mc of input.motionCases || []) {
    out.motion.push(await page.evaluate(async (mc) => {
      const { drawCameraFrame } = await import(mc.module);
      const img = new Image();
      img.src = mc.imageUrl;
      await img.decode();
      const cv = document.createElement("canvas");
      cv.width = mc.width; cv.height = mc.height;
      const ctx = cv.getContext("2d");
      drawCameraFrame(ctx, img, mc.move, mc.frame, mc.frames, mc.strength);
      return { ...mc, png: cv.toDataURL("image/png") };
    }, mc));
  }

  // 4. the demo: shorter ad, queue with the Run button, the storyboard and the preview appear
  if (input.demo) {
    const d = input.demo;
    phase = "demo";
    step("demo: load");
    const wf = input.workflows.find((w) => w.name === d.name);
    await loadWorkflow(page, wf);
    for (const [nodeId, name, value] of d.widgets) await setWidget(page, nodeId, name, value);
    step("demo: run");
    const run = await runAndWait(page);
    out.demo = { run };
    step(`demo: done ${JSON.stringify(run).slice(0, 200)}`);
    if (run.ok) {
      out.demo.prompt_id = run.prompt_id;
      for (const id of d.panelNodes) out.demo[`panel_${id}`] = await readPanel(page, id);
      await focusNode(page, d.assembleNode, 0.8);  // the frontend keeps DOM previews only for nodes in view
      out.demo.video = await readVideoPreview(page, d.videoFilename || ".mp4");
      out.demo.clip = await readClipPreview(page, d.motionNode);
      // screenshots: the whole graph, the storyboard panel (node widened like a user would), the preview
      await fitView(page);
      await page.screenshot({ path: path.join(ART, "demo_graph.png") });
      await screenshotNode(page, d.assembleNode, path.join(ART, "finished_preview.png"), { scale: 1.0 });
      await screenshotNode(page, d.motionNode, path.join(ART, "motion_clip_preview.png"), { scale: 1.0 });
      await screenshotNode(page, d.storyboardNode, path.join(ART, "storyboard_node.png"), { scale: 1.0 });
      // make room for the table like a user would: the node moved below the graph and widened
      await page.evaluate((id) => {
        const g = window.app.graph;
        let bottom = -Infinity, left = Infinity;
        for (const n of g.nodes) { bottom = Math.max(bottom, n.pos[1] + n.size[1]); left = Math.min(left, n.pos[0]); }
        const n = g.getNodeById(id);
        n.pos = [left, bottom + 120];
        n.setSize([1000, n.size[1]]);
        g.setDirtyCanvas(true, true);
      }, d.storyboardNode);
      await focusNode(page, d.storyboardNode, 1.0);
      await screenshotNode(page, d.storyboardNode, path.join(ART, "storyboard_panel.png"), { scale: 1.0 });
      out.demo.widePanel = await readPanel(page, d.storyboardNode);
      out.demo.wideColumns = await page.evaluate((id) => getComputedStyle(document.querySelector(`.adreel-storyboard[data-node-id="${id}"] .adreel-row`)).gridTemplateColumns.split(" ").length, d.storyboardNode);
      save();

      // 5. edit a scene in the table, send it to ScriptLLM, queue again: the edit is what renders
      if (d.edit && out.demo[`panel_${d.storyboardNode}`]) {
        phase = "edit";
        step("edit");
        const hasInput = await page.evaluate(({ id, w }) => !!window.app.graph.getNodeById(id).widgets.find((x) => x.name === w), { id: d.scriptNode, w: "edited_script" });
        out.edit = { hasInput };
        if (hasInput) {
          const row = page.locator(`.adreel-storyboard[data-node-id="${d.storyboardNode}"] .adreel-row[data-index="${d.edit.index}"]`);
          await row.locator('[data-field="on_screen_text"]').fill(d.edit.on_screen_text);
          await row.locator('[data-field="narration"]').fill(d.edit.narration);
          out.edit.before = await readPanel(page, d.storyboardNode);
          await page.locator(`.adreel-storyboard[data-node-id="${d.storyboardNode}"] .adreel-send`).click();
          out.edit.widget = await page.evaluate(({ id }) => window.app.graph.getNodeById(id).widgets.find((x) => x.name === "edited_script").value, { id: d.scriptNode });
          out.edit.status = (await readPanel(page, d.storyboardNode)).status;
          const run2 = await runAndWait(page);
          out.edit.run = run2;
          out.edit.after = await readPanel(page, d.storyboardNode);
          out.edit.scriptPanel = await readPanel(page, d.scriptNode);
          await screenshotNode(page, d.storyboardNode, path.join(ART, "storyboard_panel_edited.png"), { scale: 1.0 });
        }
        save();
      }

      // 6. the cost badge on ProviderRender, wired to this storyboard: the server's number for each setting
      if (input.providerCases?.length) {
        phase = "badge";
        step("badge");
        out.badge = await page.evaluate(async ({ cases, splitId, bad }) => {
          const LG = window.LiteGraph;
          const n = LG.createNode("ProviderRender");
          n.pos = [40, 1400];
          window.app.graph.add(n);
          const res = [];
          const set = (name, v) => { const w = n.widgets.find((x) => x.name === name); if (w) { w.value = v; w.callback?.(v); } };
          const badges = () => n.badges.map((b) => (typeof b === "function" ? b() : b)).map((b) => b.text);
          const read = async (c, connected) => {
            for (const [k, v] of Object.entries(c.widgets)) set(k, v);
            const first = n.adreelCost();             // right after a change: waiting for the server
            const waiting = { text: first.text, pending: !!first.pending, state: n.widgets.find((w) => w.name === "adreel_cost")?.element?.dataset.state ?? null };
            const cost = await n.adreelCostReady();
            return { ...c, connected, waiting, cost, badges: badges() };
          };
          // before the storyboard is known: per scene from the widgets
          for (const c of cases) res.push(await read(c, false));
          // settings the server refuses: its message on the badge
          const refused = await read(bad, false);
          // wired to the demo's storyboard: the run's total
          const split = window.app.graph.getNodeById(splitId);
          split.connect(1, n, 0);
          for (const c of cases) res.push(await read(c, true));
          window.app.graph.setDirtyCanvas(true, true);
          return { id: n.id, cases: res, refused };
        }, { cases: input.providerCases, splitId: d.storyboardNode, bad: input.badProviderCase });
        await page.evaluate(async ({ id, c }) => {
          const n = window.app.graph.getNodeById(id);
          for (const [k, v] of Object.entries(c.widgets)) { const w = n.widgets.find((x) => x.name === k); if (w) w.value = v; }
          await n.adreelCostReady();
        }, { id: out.badge.id, c: input.providerCases[0] });
        await screenshotNode(page, out.badge.id, path.join(ART, "cost_badge.png"), { scale: 1.1 });
        save();
      }

      // 7. the finished MP4 carries its workflow: loaded into the editor as a user drops it, the graph is back
      if (input.roundTrip) {
        phase = "roundtrip";
        step("roundtrip");
        out.roundTrip = await page.evaluate(async ({ promptId, nodeId }) => {
          const api = window.comfyAPI.api.api;
          const hist = (await (await api.fetchApi(`/history/${promptId}`)).json())[promptId];
          const item = hist.outputs[String(nodeId)].images[0];
          const q = new URLSearchParams({ filename: item.filename, subfolder: item.subfolder || "", type: item.type || "output" });
          const blob = await (await api.fetchApi(`/view?${q}`)).blob();
          const file = new File([blob], item.filename, { type: "video/mp4" });
          window.app.graph.clear();
          const before = window.app.graph.nodes.length;
          await window.app.handleFile(file);
          for (let i = 0; i < 50 && window.app.graph.nodes.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
          await new Promise((r) => setTimeout(r, 800));
          const g = window.app.graph.serialize();
          return { file: item, bytes: blob.size, before,
                   nodes: g.nodes.map((x) => ({ id: x.id, type: x.type, widgets_values: x.widgets_values ?? null, mode: x.mode ?? 0 })),
                   links: (g.links || []).map((l) => (Array.isArray(l) ? l.slice(0, 5) : [l.id, l.origin_id, l.origin_slot, l.target_id, l.target_slot])) };
        }, { promptId: out.demo.run.prompt_id, nodeId: d.assembleNode });
        await fitView(page);
        await page.screenshot({ path: path.join(ART, "roundtrip_graph.png") });
        await closeDialogs(page);
        save();
      }
    }
  }

  // 8. the template browser lists the pack's workflows with their thumbnails
  phase = "templates";
  step("templates");
  await closeDialogs(page);
  out.templateMedia = {};
  page.on("response", (r) => { if (r.url().includes("/workflow_templates/")) out.templateMedia[decodeURIComponent(new URL(r.url()).pathname)] = r.status(); });
  await page.evaluate(async () => { await window.app.extensionManager.command.execute("Comfy.BrowseTemplates"); });
  await page.waitForSelector('[data-testid="template-workflows-content"]', { timeout: 20000 }).catch(() => {});
  await settle(page);
  // the pack's category joins the list once the server's custom template index has arrived
  const cat = page.getByText(input.module, { exact: true }).first();
  await cat.waitFor({ state: "attached", timeout: 20000 }).catch(() => step("template category: not listed after 20 s"));
  if (await cat.count()) {
    await cat.scrollIntoViewIfNeeded().catch(() => {});
    await cat.click().catch((e) => step(`template category: ${e.message}`));
  }
  await page.waitForSelector(`[data-testid="template-workflow-${input.workflows[0]?.name}"]`, { timeout: 10000 }).catch(() => {});
  await settle(page);
  out.templates = await page.evaluate(async (names) => {
    const res = {};
    for (const name of names) {
      const card = document.querySelector(`[data-testid="template-workflow-${name}"]`);
      if (!card) { res[name] = null; continue; }
      card.scrollIntoView();
      // the card puts its thumbnail in once it is on screen (lazily): wait up to 10 s for the <img> and its load
      let img = card.querySelector("img");
      for (let t = 0; t < 100 && (!img || !img.complete || !img.naturalWidth); t++) {
        await new Promise((r) => setTimeout(r, 100));
        img = card.querySelector("img");
      }
      res[name] = { text: card.innerText.slice(0, 200), img: img ? { src: img.getAttribute("src"), w: img.naturalWidth, h: img.naturalHeight } : null };
    }
    return res;
  }, input.workflows.map((w) => w.name));
  await page.screenshot({ path: path.join(ART, "template_browser.png") });
  if (input.workflows.length && out.templates[input.workflows[0].name]) {
    await page.evaluate(() => window.app.graph.clear());  // so what the graph then holds is what the click opened
    await page.locator(`[data-testid="template-workflow-${input.workflows[0].name}"]`).click();
    // the card opens that workflow: wait for its nodes in the cleared graph
    const want = input.workflows[0].ui.nodes.map((n) => n.type).sort().join(",");
    await page.waitForFunction((w) => window.app.graph.nodes.map((n) => n.type).sort().join(",") === w, want,
      { timeout: 15000, polling: 100 }).catch(() => {});
    await page.waitForTimeout(300);
    out.templateOpened = await page.evaluate(() => window.app.graph.nodes.map((n) => n.type));
  }
  await closeDialogs(page);
  save();

  // 9. Korean: the same editor in ko
  if (input.korean) {
    phase = "korean";
    step("korean");
    await page.evaluate(async () => { await window.app.extensionManager.setting.set("Comfy.Locale", "ko"); });
    await page.reload({ waitUntil: "domcontentloaded" });
    await page.waitForFunction(() => window.app?.graph && window.app.extensions?.some((e) => e.name === "AdReel.Editor"), null, { timeout: 120000 });
    await page.waitForTimeout(1500);
    await dismissBanner(page);
    const wf = input.workflows.find((w) => w.name === (input.demo?.name || input.workflows[0].name));
    await loadWorkflow(page, wf);
    out.korean = await page.evaluate(() => {
      const nodes = {};
      for (const n of window.app.graph.nodes) {
        nodes[n.type] = { title: n.title, widgets: (n.widgets || []).map((w) => ({ name: w.name, label: w.label || null })),
                          inputs: (n.inputs || []).map((i) => ({ name: i.name, label: i.label || i.localized_name || null })),
                          outputs: (n.outputs || []).map((o) => ({ name: o.name, label: o.label || o.localized_name || null })) };
      }
      const defs = {};
      for (const [t, c] of Object.entries(window.LiteGraph.registered_node_types)) {
        if (c.nodeData?.category?.startsWith("AdReel") || c.nodeData?.python_module?.includes("AdReel")) defs[t] = { title: c.title, category: c.category };
      }
      const panel = document.querySelector(".adreel-storyboard .adreel-head b")?.textContent;
      return { nodes, defs, panelTitle: panel };
    });
    await fitView(page);
    await page.screenshot({ path: path.join(ART, "editor_korean.png") });
    await page.evaluate(async () => { await window.app.extensionManager.setting.set("Comfy.Locale", "en"); });
    save();
  }
  phase = "done";
} catch (err) {
  out.fatal = String(err?.stack || err);
} finally {
  save();
  await browser.close();
}
