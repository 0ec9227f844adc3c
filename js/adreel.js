// AdReel — the editor side of the pack (loaded by ComfyUI through WEB_DIRECTORY = "./js").
//
// * Storyboard panel on ScriptLLM and StoryboardSplit: the scenes as a table
//   (time, segment, narration, on-screen text, prompt) with each scene's key
//   image once SceneKeyImage has rendered it. Fields are editable; "Send to
//   ScriptLLM" writes the edited script (Script JSON) into ScriptLLM's
//   `edited_script` input, which replaces the generation on the next queue.
// * Clip preview on MotionClip: the key images moved by the same camera moves
//   as the engine (lib/motion.js), scene after scene, at the scene's length.
// * Cost badge on ProviderRender: the server's estimate for its widgets
//   (GET /adreel/providers/estimate: the engine's one price table), before
//   anything is queued; the total once the storyboard is known; red when above
//   the budget (max_cost_usd, or the server's ceiling).
// * FFmpegAssemble's finished video is shown by ComfyUI's own video preview
//   (the node returns ui.PreviewVideo).
//
// Labels come from the pack's locales/ (served by ComfyUI at /i18n) in the
// editor's language (Comfy.Locale), English otherwise.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { CAMERA_MOVES, drawCameraFrame } from "./lib/motion.js";

const EXT = "AdReel.Editor";
const PANEL_NODES = new Set(["ScriptLLM", "StoryboardSplit"]);
const SEGMENTS = ["hook", "problem", "solution", "proof", "benefit", "offer", "cta", "intro", "outro", "scene"];
const EDIT_WIDGET = "edited_script";

// ---------------------------------------------------------------- labels (locales/*/main.json → "adreel")

const EN = {
  storyboard: "Storyboard",
  script: "Script",
  empty: "Queue the workflow to see the scenes here.",
  scenes: "{n} scenes",
  time: "Time",
  segment: "Segment",
  narration: "Narration",
  onScreenText: "On-screen text",
  prompt: "Prompt",
  keyImage: "Key image",
  send: "Send to ScriptLLM",
  discard: "Discard edits",
  useGenerated: "Use the generated script",
  edits: "{n} unsaved edits",
  sent: "Edited script sent to {node}: queue to render it.",
  editedInUse: "The edited script replaces the generation.",
  noEditInput: "This ScriptLLM has no edited_script input: update the AdReel pack to send edits.",
  noScriptNode: "No ScriptLLM feeds this storyboard.",
  clipPreview: "Clip preview",
  clipEmpty: "Queue the workflow: the key images appear here with their camera moves.",
  sceneOf: "scene {i}/{n}",
  costFrom: "from {usd}/scene",
  costTotal: "≈ {usd} · {n} scenes",
  costOver: "over the {usd} budget",
  costUnknown: "price unknown",
  costAuto: "auto: priced per scene",
  costBudget: "budget {usd}",
  costWaiting: "asking the server for the price …",
  costFailed: "no estimate from the server ({why})",
};
let L = { ...EN };

function t(key, vars = {}) {
  return String(L[key] ?? EN[key] ?? key).replace(/\{(\w+)\}/g, (_, k) => (k in vars ? vars[k] : `{${k}}`));
}

async function loadLabels() {
  try {
    const locale = app.extensionManager?.setting?.get?.("Comfy.Locale") || "en";
    const res = await api.fetchApi("/i18n");
    if (!res.ok) return;
    const all = await res.json();
    const base = locale.split("-")[0];
    L = { ...EN, ...(all.en?.adreel || {}), ...(all[base]?.adreel || {}), ...(all[locale]?.adreel || {}) };
  } catch (err) {
    console.warn("[AdReel] labels: using English", err);
  }
}

// The frontend (1.32.9) merges the custom nodes' translations (/i18n) into its
// messages before it loads a non-English locale, and loading that locale then
// replaces them: node names and widget labels stay English. Merge them again
// once the locale is loaded, before the node definitions are registered.
function frontendI18n() {
  const provides = document.getElementById("vue-app")?.__vue_app__?._context?.provides;
  for (const key of Reflect.ownKeys(provides || {})) {
    const v = provides[key];
    if (v?.global && typeof v.global.mergeLocaleMessage === "function") return v.global;
  }
  return null;
}

async function restoreNodeTranslations() {
  const i18n = frontendI18n();
  const locale = app.extensionManager?.setting?.get?.("Comfy.Locale") || "en";
  if (!i18n || locale === "en") return;
  for (let i = 0; i < 100 && !i18n.getLocaleMessage(locale)?.g; i++) await new Promise((r) => setTimeout(r, 50));
  if (i18n.te("nodeDefs.BrandBrief.display_name", locale)) return;
  const res = await api.fetchApi("/i18n");
  if (!res.ok) return;
  const all = await res.json();
  if (all[locale]) i18n.mergeLocaleMessage(locale, all[locale]);
}

// ---------------------------------------------------------------- styles

const ROW = 132; // px per scene row in the panel
const CSS = `
.adreel-panel { box-sizing: border-box; width: 100%; height: 100%; overflow: hidden; font: 12px/1.35 system-ui, sans-serif;
  color: var(--fg-color, #ddd); background: var(--comfy-input-bg, #222); border-radius: 6px; padding: 6px 8px;
  display: flex; flex-direction: column; gap: 4px; container-type: inline-size; }
.adreel-panel * { box-sizing: border-box; }
.adreel-head { display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
.adreel-head b { font-size: 13px; }
.adreel-meta { opacity: .75; }
.adreel-note { color: #f5c26b; }
.adreel-empty { opacity: .7; padding: 10px 2px; }
.adreel-table { display: flex; flex-direction: column; gap: 4px; }
.adreel-row { display: grid; grid-template-columns: 58px 1fr; grid-template-rows: 22px 38px 24px 1fr; gap: 3px 8px;
  height: ${ROW}px; padding: 4px; border-radius: 5px; overflow: hidden;
  background: rgba(255,255,255,.04); border-left: 3px solid var(--seg, #888); }
.adreel-row.adreel-dirty { outline: 1px dashed #f5c26b; }
.adreel-thead { display: none; gap: 3px 8px; padding: 0 4px; border-left: 3px solid transparent; }
.adreel-thumb { grid-row: 1 / 5; align-self: center; width: 54px; height: 96px; border-radius: 3px; background: #111 center/cover no-repeat;
  display: flex; align-items: center; justify-content: center; color: #666; font-size: 10px; overflow: hidden; }
.adreel-thumb img { width: 100%; height: 100%; object-fit: cover; display: block; }
.adreel-when { display: flex; gap: 6px; align-items: center; white-space: nowrap; overflow: hidden; }
.adreel-when .adreel-idx { font-weight: 600; }
.adreel-panel select, .adreel-panel textarea, .adreel-panel input { font: inherit; color: inherit; background: transparent;
  border: 1px solid transparent; border-radius: 3px; padding: 1px 3px; width: 100%; min-width: 0; resize: none; }
.adreel-panel select { width: auto; background: rgba(0,0,0,.25); text-transform: uppercase; font-size: 10px; letter-spacing: .04em; }
.adreel-panel textarea:hover, .adreel-panel input:hover { border-color: rgba(255,255,255,.15); }
.adreel-panel textarea:focus, .adreel-panel input:focus, .adreel-panel select:focus { border-color: #6aa3ff; outline: none; background: rgba(0,0,0,.3); }
.adreel-field { display: flex; gap: 4px; align-items: stretch; min-width: 0; min-height: 0; }
.adreel-field textarea { height: 100%; line-height: 1.3; overflow: hidden; }
.adreel-field > span { flex: 0 0 auto; opacity: .55; font-size: 10px; width: 16px; padding-top: 3px; text-align: center; }
.adreel-f-text textarea { font-weight: 600; }
.adreel-f-prompt textarea { opacity: .8; font-size: 11px; }
.adreel-foot { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; min-height: 26px; }
.adreel-foot button { font: inherit; padding: 3px 10px; border-radius: 4px; border: 1px solid rgba(255,255,255,.2);
  background: rgba(255,255,255,.08); color: inherit; cursor: pointer; }
.adreel-foot button.adreel-primary { background: #2f6fdd; border-color: #2f6fdd; color: white; }
.adreel-foot button:disabled { opacity: .45; cursor: default; }
.adreel-status { opacity: .8; }
@container (min-width: 700px) {
  .adreel-thead { display: grid; opacity: .6; font-size: 11px; }
  .adreel-thead, .adreel-row { grid-template-columns: 58px 130px 1.2fr .9fr 1.2fr; grid-template-rows: none; }
  .adreel-thead { height: auto; }
  .adreel-thumb { grid-row: auto; }
  .adreel-field textarea { height: 100%; }

  .adreel-when { flex-direction: column; align-items: flex-start; gap: 2px; }
  .adreel-field > span { display: none; }
}
.adreel-clip { box-sizing: border-box; width: 100%; height: 100%; display: flex; flex-direction: column; align-items: center;
  gap: 4px; font: 11px system-ui, sans-serif; color: var(--fg-color, #ddd); }
.adreel-clip canvas { background: #000; border-radius: 4px; max-width: 100%; }
.adreel-cost { box-sizing: border-box; width: 100%; font: 11px/1.3 system-ui, sans-serif; color: var(--fg-color, #ddd);
  opacity: .85; padding: 2px 4px; white-space: pre-wrap; overflow: hidden; }
.adreel-cost.adreel-over { color: #ff8a80; opacity: 1; }
`;

function injectStyles() {
  if (document.getElementById("adreel-styles")) return;
  const el = document.createElement("style");
  el.id = "adreel-styles";
  el.textContent = CSS;
  document.head.appendChild(el);
}

// ---------------------------------------------------------------- graph helpers

function widget(node, name) {
  return node?.widgets?.find((w) => w.name === name);
}

/** The node feeding input `name` of `node` (through frontend Reroute nodes), or null (also for a node no
 * longer in a graph: an estimate that answers after the user opened another workflow). */
function upstream(node, name) {
  if (!node?.inputs || !node.graph) return null;
  const slot = node.inputs.findIndex((i) => i.name === name);
  if (slot < 0) return null;
  let src = node.getInputNode?.(slot) ?? null;
  for (let hops = 0; src && src.type === "Reroute" && hops < 32; hops++) src = src.getInputNode?.(0) ?? null;
  return src;
}

function type(node) {
  return node?.comfyClass || node?.type;
}

function nodesOfType(type) {
  return (app.graph?.nodes || []).filter((n) => (n.comfyClass || n.type) === type);
}

function findUpstreamOfType(node, type, seen = new Set()) {
  if (!node || seen.has(node.id)) return null;
  seen.add(node.id);
  for (const inp of node.inputs || []) {
    const src = upstream(node, inp.name);
    if (!src) continue;
    if ((src.comfyClass || src.type) === type) return src;
    const deeper = findUpstreamOfType(src, type, seen);
    if (deeper) return deeper;
  }
  return null;
}

function redraw() {
  app.graph?.setDirtyCanvas(true, true);
}

function viewUrl(img) {
  const q = new URLSearchParams({ filename: img.filename, type: img.type || "output", subfolder: img.subfolder || "" });
  return api.apiURL(`/view?${q.toString()}`);
}

// ---------------------------------------------------------------- data from executions

const scriptData = new Map(); // ScriptLLM node id → Script (JSON)
const storyboardData = new Map(); // StoryboardSplit node id → Storyboard (JSON, without the brief) + script
const keyImages = new Map(); // SceneKeyImage node id → [{filename, subfolder, type}] in scene order

/** Scenes to show on a panel node: [{index, start, duration, segment, narration, on_screen_text, image_prompt, ...}]. */
function panelData(node) {
  const type = node.comfyClass || node.type;
  if (type === "StoryboardSplit") {
    const sb = storyboardData.get(node.id);
    if (!sb) return null;
    return { kind: "storyboard", title: sb.title, script: sb.script, scenes: sb.scenes,
             meta: `${sb.width}×${sb.height} @ ${sb.fps} fps · ${sb.total_duration} s · ${sb.script_source}`, notes: sb.notes || [] };
  }
  const sc = scriptData.get(node.id);
  if (!sc) return null;
  return { kind: "script", title: sc.title, script: sc,
           scenes: sc.scenes.map((s) => ({ ...s, duration: +(s.end - s.start).toFixed(3) })),
           meta: `${sc.total_duration} s · ${sc.language} · ${sc.source}`, notes: sc.notes || [] };
}

/** Key images of a panel node's scenes: from a SceneKeyImage fed by its storyboard. */
function panelKeyImages(node) {
  const type = node.comfyClass || node.type;
  const splits = type === "StoryboardSplit" ? [node] : nodesOfType("StoryboardSplit").filter((s) => upstream(s, "script") === node);
  for (const split of splits) {
    for (const k of nodesOfType("SceneKeyImage")) {
      if (upstream(k, "scene") === split && keyImages.get(k.id)?.length) return keyImages.get(k.id);
    }
  }
  return NO_IMAGES;
}
const NO_IMAGES = Object.freeze([]);

/** The ScriptLLM that an edit from this panel goes back to. */
function scriptNodeFor(node) {
  const type = node.comfyClass || node.type;
  if (type === "ScriptLLM") return node;
  const src = upstream(node, "script");
  return src && (src.comfyClass || src.type) === "ScriptLLM" ? src : null;
}

// ---------------------------------------------------------------- storyboard panel

const SEG_COLORS = { hook: "#f59e0b", problem: "#ef4444", solution: "#10b981", proof: "#3b82f6", benefit: "#22c55e",
                     offer: "#a855f7", cta: "#ec4899", intro: "#64748b", outro: "#64748b", scene: "#94a3b8" };

class StoryboardPanel {
  constructor(node) {
    this.node = node;
    this.edits = new Map(); // scene index → {field: value}
    this.status = "";
    this.el = document.createElement("div");
    this.el.className = "adreel-panel adreel-storyboard";
    this.el.dataset.kind = (node.comfyClass || node.type) === "StoryboardSplit" ? "storyboard" : "script";
    this.widget = node.addDOMWidget("adreel_storyboard", "adreel-storyboard", this.el, {
      serialize: false, hideOnZoom: false,
      getMinHeight: () => this.height(), getMaxHeight: () => this.height(),
      getValue: () => "", setValue: () => {},
    });
    this.widget.serialize = false;
    this.render();
    this.observer = new ResizeObserver(() => this.measure());
    this.observer.observe(this.el);
  }

  height() {
    if (this.measured) return this.measured + 12; // + the widget's margins
    const n = this.data?.scenes?.length || 0;
    return n ? 64 + n * (ROW + 4) + 34 : 64;
  }

  /** The panel's natural height (its children stacked), so the node fits it. */
  measure() {
    const kids = [...this.el.children];
    if (!kids.length || !this.el.isConnected) return;
    const cs = getComputedStyle(this.el);
    const gap = parseFloat(cs.rowGap) || 0;
    const h = Math.ceil(kids.reduce((a, c) => a + c.offsetHeight, 0) + gap * (kids.length - 1)
                        + parseFloat(cs.paddingTop) + parseFloat(cs.paddingBottom));
    if (h > 20 && Math.abs(h - (this.measured || 0)) > 2) {
      this.measured = h;
      this.fit();
    }
  }

  fit() {
    const node = this.node;
    const want = node.computeSize?.();
    if (want && Math.abs(node.size[1] - want[1]) > 1) node.setSize([Math.max(node.size[0], want[0]), want[1]]);
    redraw();
  }

  update() {
    const before = this.data?.scenes?.length || 0;
    const data = panelData(this.node);
    const images = panelKeyImages(this.node);
    const source = type(this.node) === "StoryboardSplit" ? storyboardData.get(this.node.id) : scriptData.get(this.node.id);
    if (source === this.lastSource && images === this.lastImages && this.rendered) return; // nothing new: keep what the user is typing
    this.lastSource = source;
    this.lastImages = images;
    this.rendered = true;
    this.data = data;
    if (this.data && this.data.script !== this.lastScript) {
      this.edits.clear(); // a new script from the server
      this.lastScript = this.data.script;
    }
    this.render();
    if ((this.data?.scenes?.length || 0) !== before) this.fit();
    requestAnimationFrame(() => this.measure());
  }

  editedValue(scene, field) {
    const e = this.edits.get(scene.index);
    return e && field in e ? e[field] : scene[field] ?? "";
  }

  setEdit(scene, field, value) {
    const e = this.edits.get(scene.index) || {};
    const orig = this.data.script.scenes.find((s) => s.index === scene.index)?.[field] ?? scene[field] ?? "";
    if (value === orig) delete e[field]; else e[field] = value;
    if (Object.keys(e).length) this.edits.set(scene.index, e); else this.edits.delete(scene.index);
    this.status = "";
    this.renderFoot();
    this.el.querySelector(`.adreel-row[data-index="${scene.index}"]`)?.classList.toggle("adreel-dirty", this.edits.has(scene.index));
  }

  editCount() {
    let n = 0;
    for (const e of this.edits.values()) n += Object.keys(e).length;
    return n;
  }

  render() {
    const el = this.el;
    el.dataset.nodeId = String(this.node.id);
    el.replaceChildren();
    const head = document.createElement("div");
    head.className = "adreel-head";
    const title = document.createElement("b");
    title.textContent = this.el.dataset.kind === "storyboard" ? t("storyboard") : t("script");
    head.appendChild(title);
    const data = this.data;
    if (!data) {
      el.appendChild(head);
      const empty = document.createElement("div");
      empty.className = "adreel-empty";
      empty.textContent = t("empty");
      el.appendChild(empty);
      return;
    }
    const meta = document.createElement("span");
    meta.className = "adreel-meta";
    meta.textContent = `${data.title} · ${t("scenes", { n: data.scenes.length })} · ${data.meta}`;
    head.appendChild(meta);
    el.appendChild(head);
    for (const note of data.notes.slice(0, 2)) {
      const n = document.createElement("div");
      n.className = "adreel-note";
      n.textContent = note;
      el.appendChild(n);
    }
    const table = document.createElement("div");
    table.className = "adreel-table";
    table.setAttribute("role", "table");
    const thead = document.createElement("div");
    thead.className = "adreel-thead";
    thead.setAttribute("role", "row");
    for (const h of [t("keyImage"), `${t("time")} · ${t("segment")}`, t("narration"), t("onScreenText"), t("prompt")]) {
      const c = document.createElement("div");
      c.setAttribute("role", "columnheader");
      c.textContent = h;
      thead.appendChild(c);
    }
    table.appendChild(thead);
    const images = panelKeyImages(this.node);
    data.scenes.forEach((scene, i) => table.appendChild(this.renderRow(scene, images[i])));
    el.appendChild(table);
    this.foot = document.createElement("div");
    this.foot.className = "adreel-foot";
    el.appendChild(this.foot);
    this.renderFoot();
  }

  renderRow(scene, image) {
    const row = document.createElement("div");
    row.className = "adreel-row" + (this.edits.has(scene.index) ? " adreel-dirty" : "");
    row.setAttribute("role", "row");
    row.dataset.index = String(scene.index);
    const seg = this.editedValue(scene, "segment");
    row.style.setProperty("--seg", SEG_COLORS[seg] || "#888");

    const thumb = document.createElement("div");
    thumb.className = "adreel-thumb";
    thumb.setAttribute("role", "cell");
    if (image) {
      const img = document.createElement("img");
      img.src = viewUrl(image);
      img.alt = `scene ${scene.index + 1}`;
      img.loading = "eager";
      thumb.appendChild(img);
    } else {
      thumb.textContent = "—";
    }
    row.appendChild(thumb);

    const when = document.createElement("div");
    when.className = "adreel-when";
    when.setAttribute("role", "cell");
    const idx = document.createElement("span");
    idx.className = "adreel-idx";
    idx.textContent = `#${scene.index + 1}`;
    const time = document.createElement("span");
    time.className = "adreel-time";
    const end = scene.start + scene.duration;
    time.textContent = `${scene.start.toFixed(2)}–${end.toFixed(2)} s`;
    const select = document.createElement("select");
    select.className = "adreel-segment";
    select.title = t("segment");
    for (const s of SEGMENTS.includes(seg) ? SEGMENTS : [seg, ...SEGMENTS]) {
      const o = document.createElement("option");
      o.value = s;
      o.textContent = s;
      select.appendChild(o);
    }
    select.value = seg;
    select.addEventListener("change", () => {
      this.setEdit(scene, "segment", select.value);
      row.style.setProperty("--seg", SEG_COLORS[select.value] || "#888");
    });
    when.append(idx, time, select);
    row.appendChild(when);

    const field = (cls, icon, label, key, multiline) => {
      const f = document.createElement("label");
      f.className = `adreel-field ${cls}`;
      f.setAttribute("role", "cell");
      const i = document.createElement("span");
      i.textContent = icon;
      i.title = label;
      const input = document.createElement(multiline ? "textarea" : "input");
      if (multiline) input.rows = key === "on_screen_text" ? 1 : 2;
      input.value = this.editedValue(scene, key);
      input.title = label;
      input.dataset.field = key;
      input.spellcheck = false;
      input.addEventListener("input", () => this.setEdit(scene, key, input.value));
      f.append(i, input);
      return f;
    };
    row.appendChild(field("adreel-f-narration", "🗣", t("narration"), "narration", true));
    row.appendChild(field("adreel-f-text", "T", t("onScreenText"), "on_screen_text", true));
    row.appendChild(field("adreel-f-prompt", "✎", t("prompt"), "image_prompt", true));
    return row;
  }

  renderFoot() {
    const foot = this.foot;
    if (!foot) return;
    foot.replaceChildren();
    const target = scriptNodeFor(this.node);
    const editWidget = widget(target, EDIT_WIDGET);
    const n = this.editCount();
    const send = document.createElement("button");
    send.className = "adreel-primary adreel-send";
    send.textContent = t("send");
    send.disabled = !n || !editWidget;
    send.addEventListener("click", () => this.send());
    const discard = document.createElement("button");
    discard.className = "adreel-discard";
    discard.textContent = t("discard");
    discard.disabled = !n;
    discard.addEventListener("click", () => { this.edits.clear(); this.status = ""; this.render(); });
    foot.append(send, discard);
    if (editWidget && String(editWidget.value || "").trim()) {
      const gen = document.createElement("button");
      gen.className = "adreel-use-generated";
      gen.textContent = t("useGenerated");
      gen.addEventListener("click", () => {
        editWidget.value = "";
        editWidget.callback?.("");
        this.status = "";
        this.renderFoot();
        redraw();
      });
      foot.appendChild(gen);
    }
    const status = document.createElement("span");
    status.className = "adreel-status";
    if (this.status) status.textContent = this.status;
    else if (!target) status.textContent = t("noScriptNode");
    else if (!editWidget) status.textContent = t("noEditInput");
    else if (n) status.textContent = t("edits", { n });
    else if (String(editWidget.value || "").trim()) status.textContent = t("editedInUse");
    foot.appendChild(status);
  }

  /** The edited script → ScriptLLM's edited_script widget (Script JSON, source "edited"). */
  send() {
    const target = scriptNodeFor(this.node);
    const editWidget = widget(target, EDIT_WIDGET);
    if (!editWidget || !this.data) return;
    const script = JSON.parse(JSON.stringify(this.data.script));
    for (const sc of script.scenes) Object.assign(sc, this.edits.get(sc.index) || {});
    script.source = "edited";
    const text = JSON.stringify(script, null, 2);
    editWidget.value = text;
    editWidget.callback?.(text);
    this.edits.clear();
    this.status = t("sent", { node: `${target.title || target.type} #${target.id}` });
    this.render();
    redraw();
    app.graph?.change?.();
  }
}

// ---------------------------------------------------------------- MotionClip preview

class ClipPreview {
  constructor(node) {
    this.node = node;
    this.el = document.createElement("div");
    this.el.className = "adreel-clip";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "adreel-clip-canvas";
    this.caption = document.createElement("div");
    this.caption.className = "adreel-clip-caption";
    this.el.append(this.canvas, this.caption);
    this.widget = node.addDOMWidget("adreel_clip_preview", "adreel-clip", this.el, {
      serialize: false, hideOnZoom: false, getMinHeight: () => 250, getValue: () => "", setValue: () => {},
    });
    this.widget.serialize = false;
    this.images = new Map(); // url → HTMLImageElement
    this.t0 = performance.now();
    this.frame = this.frame.bind(this);
    requestAnimationFrame(this.frame);
  }

  /** [{image url, move, frames, fps, label}] for the scenes this node renders. */
  clips() {
    const split = upstream(this.node, "scene");
    const sb = split && storyboardData.get(split.id);
    const keyNode = upstream(this.node, "images");
    const imgs = keyNode && keyImages.get(keyNode.id);
    if (!sb || !imgs?.length) return [];
    const camera = widget(this.node, "camera")?.value ?? "from scene";
    return sb.scenes.map((sc, i) => ({
      url: imgs[i] && viewUrl(imgs[i]),
      move: camera === "from scene" ? sc.camera : camera,
      frames: sc.frame_count,
      fps: sb.fps,
      width: sb.width,
      height: sb.height,
      label: `${t("sceneOf", { i: i + 1, n: sb.scenes.length })} · ${camera === "from scene" ? sc.camera : camera} · ${(sc.frame_count / sb.fps).toFixed(2)} s`,
    })).filter((c) => c.url && CAMERA_MOVES.includes(c.move));
  }

  image(url) {
    let img = this.images.get(url);
    if (!img) {
      img = new Image();
      img.src = url;
      this.images.set(url, img);
    }
    return img;
  }

  /** Which clip and frame to show at time `ms` after the start (the clips loop in scene order). */
  position(clips, ms) {
    const total = clips.reduce((a, c) => a + c.frames / c.fps, 0);
    let t = ((ms / 1000) % total + total) % total;
    for (const c of clips) {
      const d = c.frames / c.fps;
      if (t < d) return { clip: c, frame: Math.min(c.frames - 1, Math.floor(t * c.fps)) };
      t -= d;
    }
    const last = clips[clips.length - 1];
    return { clip: last, frame: last.frames - 1 };
  }

  frame(now) {
    if (!this.node.graph) return; // removed
    requestAnimationFrame(this.frame);
    if (!this.el.isConnected || this.el.offsetParent === null) return;
    const clips = this.clips();
    const box = this.el.getBoundingClientRect();
    const maxH = 220, maxW = Math.max(80, (this.el.clientWidth || 300) - 8);
    const c = clips[0];
    const aspect = c ? c.width / c.height : 9 / 16;
    const h = Math.round(Math.min(maxH, maxW / aspect)), w = Math.round(h * aspect);
    const dpr = Math.min(2, window.devicePixelRatio || 1);
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
      this.canvas.style.width = `${w}px`;
      this.canvas.style.height = `${h}px`;
    }
    const ctx = this.canvas.getContext("2d");
    if (!clips.length || !box.width) {
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
      this.caption.textContent = t("clipEmpty");
      this.el.dataset.state = "empty";
      return;
    }
    const pos = this.position(clips, now - this.t0);
    const img = this.image(pos.clip.url);
    if (!img.complete || !img.naturalWidth) return;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    drawCameraFrame(ctx, img, pos.clip.move, pos.frame, pos.clip.frames, Number(widget(this.node, "strength")?.value ?? 1));
    this.caption.textContent = pos.clip.label;
    this.el.dataset.state = "playing";
    this.el.dataset.clips = String(clips.length);
  }
}

// ---------------------------------------------------------------- ProviderRender cost badge
//
// The number is the server's: GET /adreel/providers/estimate prices the run from the engine's one
// price table and each provider's own plan (allowed clip lengths, resolutions, HeyGen's speaking
// rate, the server's spending ceiling). The badge asks when a widget or the storyboard changes
// (debounced), shows "…" while it waits and the server's message when it refuses the settings.

const ESTIMATE_ROUTE = "/adreel/providers/estimate";
const ESTIMATE_DEBOUNCE_MS = 250;
const estimates = new Map(); // query → {ok, body} (the last answers, for every badge)
const ESTIMATES_KEPT = 64;

function formatUsd(x) {
  if (x == null) return "?";
  return x < 0.1 && x > 0 ? `$${x.toFixed(3)}` : `$${x.toFixed(2)}`;
}

/** What to ask the server for this node's widgets and storyboard: {query, sb, budget} or {local}. */
function costRequest(node) {
  const provider = String(widget(node, "provider")?.value ?? "");
  const model = String(widget(node, "model")?.value ?? "");
  const maxCost = Number(widget(node, "max_cost_usd")?.value ?? 0);
  const split = findUpstreamOfType(node, "StoryboardSplit");
  const sb = split && storyboardData.get(split.id);
  const brief = findUpstreamOfType(node, "BrandBrief");
  // the aspect ProviderRender asks providers for: the nearest of theirs to the frame (request.aspect_for),
  // so a 4:5 feed ad is estimated as the 1:1 clip it will be rendered from
  const [aw, ah] = String(widget(brief, "aspect_ratio")?.value || "9:16").split(":").map(Number);
  const ratio = sb ? sb.width / sb.height : (aw > 0 && ah > 0 ? aw / ah : 9 / 16);
  const aspect = [["9:16", 9 / 16], ["1:1", 1], ["16:9", 16 / 9]]
    .reduce((best, a) => (Math.abs(a[1] - ratio) < Math.abs(best[1] - ratio) ? a : best))[0];
  const budget = Number.isFinite(maxCost) && maxCost > 0 ? maxCost : null;
  if (provider === "auto") {
    return { local: { text: budget ? `${t("costAuto")} · ${t("costBudget", { usd: formatUsd(budget) })}` : t("costAuto"), detail: "", over: false } };
  }
  const q = new URLSearchParams({ provider, model, aspect_ratio: aspect, max_cost_usd: String(budget ?? 0) });
  const options = String(widget(node, "options_json")?.value ?? "");
  if (options.trim()) q.set("options_json", options);
  if (sb) {
    q.set("durations", sb.scenes.map((s) => String(s.frame_count / sb.fps)).join(","));
    // only HeyGen prices what is said (the clip follows the narration): the others need no text
    if (provider === "heygen") q.set("narrations", JSON.stringify(sb.scenes.map((s) => s.narration || "")));
  }
  return { query: q.toString(), sb, budget };
}

/** The badge for the server's answer. */
function costFromAnswer(answer, req) {
  if (!answer.ok) {
    const msg = answer.body?.error || t("costFailed", { why: answer.why || `HTTP ${answer.status}` });
    return { text: `✕ ${msg}`, detail: msg, over: true, error: msg };
  }
  const est = answer.body;
  const detail = est.scenes?.[0]?.basis || "";
  const ceiling = est.budget_note ? ` (${est.budget_note})` : "";
  if (est.unknown) return { text: t("costUnknown"), detail, over: req.budget != null, total: est.total_usd };
  let text = req.sb ? t("costTotal", { usd: formatUsd(est.total_usd), n: est.scenes.length })
                    : t("costFrom", { usd: formatUsd(est.total_usd) });
  const over = !est.within_budget;
  if (over) text += ` · ${t("costOver", { usd: formatUsd(est.budget_usd) })}${ceiling}`;
  else if (req.budget != null) text += ` · ${t("costBudget", { usd: formatUsd(est.budget_usd) })}`;
  return { text, detail, over, total: est.total_usd, scenes: est.scenes.length, known: !!req.sb,
           budget: est.budget_usd };
}

async function askEstimate(query) {
  try {
    const res = await api.fetchApi(`${ESTIMATE_ROUTE}?${query}`, { cache: "no-store" });
    let body = null;
    try { body = await res.json(); } catch { body = null; }
    if (!res.ok && !body?.error) return { ok: false, status: res.status, why: `HTTP ${res.status}` };
    return { ok: res.ok, status: res.status, body };
  } catch (err) {
    return { ok: false, status: 0, why: String(err?.message || err) };
  }
}

function setupCostBadge(node) {
  const el = document.createElement("div");
  el.className = "adreel-cost";
  const w = node.addDOMWidget("adreel_cost", "adreel-cost", el, {
    serialize: false, hideOnZoom: false, getMinHeight: () => 34, getMaxHeight: () => 34, getValue: () => "", setValue: () => {},
  });
  w.serialize = false;
  let last = null;
  const st = { query: null, timer: null, inflight: null, waiters: [] };
  const settle = () => {
    if (st.timer || st.inflight) return;
    for (const resolve of st.waiters.splice(0)) resolve(node.adreelCost());
  };
  const ask = (query) => {
    if (st.query === query && (st.timer || st.inflight)) return;
    st.query = query;
    clearTimeout(st.timer);
    st.timer = setTimeout(() => {
      st.timer = null;
      const flight = (st.inflight = askEstimate(query).then((answer) => {
        if (estimates.size >= ESTIMATES_KEPT) estimates.delete(estimates.keys().next().value);
        estimates.set(query, answer);
      }).finally(() => {
        if (st.inflight === flight) st.inflight = null;
        node.setDirtyCanvas?.(true, true);
        node.adreelCost();
        settle();
      }));
    }, ESTIMATE_DEBOUNCE_MS);
  };
  node.adreelCost = () => {
    const req = costRequest(node);
    let c;
    if (req.local) {
      c = req.local;
    } else if (estimates.has(req.query)) {
      c = costFromAnswer(estimates.get(req.query), req);
    } else {
      ask(req.query);
      c = { text: "…", detail: t("costWaiting"), over: false, pending: true };
    }
    const key = JSON.stringify(c);
    if (key !== last) {
      last = key;
      el.textContent = c.detail || "";
      el.classList.toggle("adreel-over", !!c.over);
      el.dataset.cost = c.text;
      el.dataset.state = c.pending ? "waiting" : c.error ? "error" : "ready";
    }
    return c;
  };
  /** The badge once the server has answered for the current settings (for tests and scripts). */
  node.adreelCostReady = () => new Promise((resolve) => {
    const c = node.adreelCost();
    if (!c.pending) return resolve(c);
    st.waiters.push(resolve);
  });
  const Badge = window.LGraphBadge;
  if (!Badge || !Array.isArray(node.badges)) return;
  node.badges.push(() => {
    const c = node.adreelCost();
    return new Badge({ text: `💲 ${c.text}`, fgColor: c.over ? "#fff" : "#e8f5e9", bgColor: c.over ? "#b3261e" : "#1f5f3a" });
  });
}

// ---------------------------------------------------------------- outputs of cached nodes
//
// ComfyUI sends no "executed" message for a node whose result comes from its
// cache (same inputs as an earlier run), and a reloaded page has no outputs at
// all. The earlier run's outputs are in the server's history: a node whose
// inputs, and those of every node upstream of it, equal those of a node in an
// earlier prompt has that prompt's outputs.

const WATCHED = { ScriptLLM: "adreel_script", StoryboardSplit: "adreel_storyboard", SceneKeyImage: "images" };

function signatures(prompt) {
  const memo = new Map();
  const sig = (id, depth = 0) => {
    if (memo.has(id)) return memo.get(id);
    const n = prompt[id];
    if (!n || depth > 256) return "?";
    const inputs = {};
    for (const [k, v] of Object.entries(n.inputs || {})) {
      inputs[k] = Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && prompt[v[0]] ? ["@", sig(v[0], depth + 1), v[1]] : v;
    }
    const out = JSON.stringify([n.class_type, Object.keys(inputs).sort().map((k) => [k, inputs[k]])]);
    memo.set(id, out);
    return out;
  };
  return sig;
}

function applyOutput(id, type, output) {
  if (type === "ScriptLLM" && output?.adreel_script?.[0]) scriptData.set(id, output.adreel_script[0]);
  if (type === "StoryboardSplit" && output?.adreel_storyboard?.[0]) storyboardData.set(id, output.adreel_storyboard[0]);
  if (type === "SceneKeyImage" && Array.isArray(output?.images)) keyImages.set(id, output.images);
}

let restoring = null;
async function restoreFromHistory(prompt) {
  const missing = Object.entries(prompt).filter(([id, n]) => {
    if (!(n.class_type in WATCHED)) return false;
    const nid = Number(id);
    return !(n.class_type === "ScriptLLM" ? scriptData.has(nid) : n.class_type === "StoryboardSplit" ? storyboardData.has(nid) : keyImages.has(nid));
  });
  if (!missing.length) return;
  const res = await api.fetchApi("/history?max_items=64");
  if (!res.ok) return;
  const history = Object.values(await res.json()).reverse(); // newest first
  const want = signatures(prompt);
  let found = 0;
  for (const [id, n] of missing) {
    const target = want(id);
    for (const entry of history) {
      const old = entry.prompt?.[2];
      const out = entry.outputs?.[id];
      if (!old?.[id] || !out?.[WATCHED[n.class_type]] || signatures(old)(id) !== target) continue;
      applyOutput(Number(id), n.class_type, out);
      found++;
      break;
    }
  }
  if (found) refreshPanels();
}

function scheduleRestore(prompt) {
  const run = async () => {
    try {
      const p = prompt || (await app.graphToPrompt())?.output;
      if (p) await restoreFromHistory(p);
    } catch (err) {
      console.warn("[AdReel] could not restore outputs from the history", err);
    }
  };
  restoring = (restoring || Promise.resolve()).then(run);
  return restoring;
}

async function onPromptDone(event) {
  const pid = event?.detail?.prompt_id;
  if (!pid) return;
  try {
    const res = await api.fetchApi(`/history/${encodeURIComponent(pid)}`);
    const entry = res.ok ? (await res.json())[pid] : null;
    if (entry?.prompt?.[2]) await scheduleRestore(entry.prompt[2]);
  } catch (err) {
    console.warn("[AdReel] could not read the finished prompt", err);
  }
}

// ---------------------------------------------------------------- wiring

function refreshPanels(force = false) {
  for (const n of app.graph?.nodes || []) {
    if (force && n.adreelPanel) n.adreelPanel.rendered = false;
    n.adreelPanel?.update();
  }
  redraw();
}

app.registerExtension({
  name: EXT,

  async init() {
    try {
      await restoreNodeTranslations();
    } catch (err) {
      console.warn("[AdReel] translations", err);
    }
  },

  async setup() {
    injectStyles();
    await loadLabels();
    refreshPanels(true);
    api.addEventListener("execution_success", onPromptDone);
  },

  async afterConfigureGraph() {
    // a workflow was opened: show what the server already rendered for it
    setTimeout(() => scheduleRestore(), 0);
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    const name = nodeData?.name;
    if (!["ScriptLLM", "StoryboardSplit", "SceneKeyImage"].includes(name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      const r = onExecuted?.apply(this, arguments);
      try {
        applyOutput(this.id, name, output);
        refreshPanels();
      } catch (err) {
        console.warn("[AdReel] could not show the output of", name, err);
      }
      return r;
    };
  },

  nodeCreated(node) {
    const type = node.comfyClass || node.type;
    injectStyles();
    if (PANEL_NODES.has(type)) {
      node.adreelPanel = new StoryboardPanel(node);
      const onConnectionsChange = node.onConnectionsChange;
      node.onConnectionsChange = function () {
        const r = onConnectionsChange?.apply(this, arguments);
        queueMicrotask(() => this.adreelPanel?.renderFoot());
        return r;
      };
    } else if (type === "MotionClip") {
      node.adreelClip = new ClipPreview(node);
    } else if (type === "ProviderRender") {
      setupCostBadge(node);
    }
  },
});
