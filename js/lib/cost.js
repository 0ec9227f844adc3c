// AdReel — cost estimates for ProviderRender, computed in the editor before anything is queued.
//
// The same published prices and the same rules as the engine
// (nodes/engine/providers/cost.py and each provider's plan: allowed clip
// lengths, default resolution, HeyGen's speaking-rate estimate). The browser
// test compares these numbers with the engine's estimate_scenes() case by
// case, so the two cannot drift apart silently. A price the table does not
// know is reported as unknown, never guessed.
//
// Pure module: no imports, no side effects (ComfyUI loads every .js file under
// js/ as an extension; this one only exports).

const round4 = (x) => Math.round((x + 1e-12) * 1e4) / 1e4;
// Python's round(): halves go to the even neighbour
const pyRound = (x) => { const f = Math.floor(x), d = x - f; return d > 0.5 ? f + 1 : d < 0.5 ? f : (f % 2 === 0 ? f : f + 1); };
const fmt = (x) => String(Number(x.toPrecision(12))); // like Python's :g for the numbers used here

const RATIOS_ALL = ["9:16", "1:1", "16:9"];
const RATIOS_WIDE_TALL = ["9:16", "16:9"];

export const LUMA_USD_PER_MPX = { "ray-2": 0.0064, "ray-flash-2": 0.0022 };
export const LUMA_FPS = 24;
export const LUMA_PIXELS = { "540p": 960 * 540, "720p": 1280 * 720, "1080p": 1920 * 1080, "4k": 3840 * 2160 };
export const RUNWAY_USD_PER_CREDIT = 0.01;
export const RUNWAY_CREDITS_PER_SECOND = { gen4_turbo: 5, veo3: 40 };
export const HEYGEN_CREDITS_PER_MINUTE = { avatar: 1.0, talking_photo: 0.2 };
export const HEYGEN_BILLING_STEP_S = 30;
export const HEYGEN_USD_PER_CREDIT = 0.99;
export const HEYGEN_WORDS_PER_SECOND = 2.5;
export const FAL_PER_VIDEO = { "fal-ai/stable-video": 0.075 };
export const FAL_KLING = {
  "fal-ai/kling-video/v2.1/standard/image-to-video": [0.28, 0.056],
  "fal-ai/kling-video/v2.1/pro/image-to-video": [0.49, 0.098],
};
export const VEO_USD_PER_SECOND = {
  "veo-3.1-generate-preview": 0.4,
  "veo-3.1-fast-generate-preview": 0.15,
  "veo-3.0-generate-001": 0.4,
  "veo-3.0-fast-generate-001": 0.15,
  "veo-2.0-generate-001": 0.35,
};
export const VEO_4K_USD_PER_SECOND = { "veo-3.1-generate-preview": 0.6 };
export const REPLICATE_PRICES = { "minimax/video-01": { per_run: 0.5 } };

const range = (lo, hi) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);

// What each model accepts (mirrors the ModelSpec of each provider module).
export const PROVIDERS = {
  luma: {
    label: "Luma",
    models: Object.fromEntries(["ray-2", "ray-flash-2"].map((m) => [m, {
      ratios: RATIOS_ALL, durations: [5, 9], resolutions: ["540p", "720p", "1080p", "4k"], defaultResolution: "720p",
    }])),
  },
  runway: {
    label: "Runway",
    models: {
      gen4_turbo: { ratios: RATIOS_ALL, durations: range(2, 10) },
      veo3: { ratios: RATIOS_WIDE_TALL, durations: [8], resolutions: ["720p", "1080p"], defaultResolution: "720p" },
    },
  },
  heygen: {
    label: "HeyGen",
    models: { avatar: { ratios: RATIOS_ALL }, talking_photo: { ratios: RATIOS_ALL } },
  },
  fal: {
    label: "fal.ai",
    models: {
      "fal-ai/stable-video": { ratios: RATIOS_ALL },
      "fal-ai/kling-video/v2.1/standard/image-to-video": { ratios: RATIOS_ALL, durations: [5, 10] },
      "fal-ai/kling-video/v2.1/pro/image-to-video": { ratios: RATIOS_ALL, durations: [5, 10] },
    },
  },
  replicate: {
    label: "Replicate",
    anyModel: /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+(:[0-9a-f]{8,64})?$/,
    models: Object.fromEntries(Object.keys(REPLICATE_PRICES).map((m) => [m, { ratios: RATIOS_ALL }])),
  },
  veo: {
    label: "Google Veo",
    models: {
      "veo-3.1-generate-preview": { ratios: RATIOS_WIDE_TALL, durations: [4, 6, 8], resolutions: ["720p", "1080p", "4k"], defaultResolution: "720p" },
      "veo-3.1-fast-generate-preview": { ratios: RATIOS_WIDE_TALL, durations: [4, 6, 8], resolutions: ["720p", "1080p", "4k"], defaultResolution: "720p" },
      "veo-3.0-generate-001": { ratios: RATIOS_WIDE_TALL, durations: [4, 6, 8], resolutions: ["720p", "1080p"], defaultResolution: "720p" },
      "veo-3.0-fast-generate-001": { ratios: RATIOS_WIDE_TALL, durations: [4, 6, 8], resolutions: ["720p", "1080p"], defaultResolution: "720p" },
      "veo-2.0-generate-001": { ratios: RATIOS_WIDE_TALL, durations: range(5, 8) },
    },
  },
};

/** The provider that offers `model` (for provider "auto" or a model picked from the full list). */
export function providerOfModel(model) {
  for (const [name, p] of Object.entries(PROVIDERS)) if (model in p.models) return name;
  if (PROVIDERS.replicate.anyModel.test(String(model || "").trim())) return "replicate";
  return null;
}

/** The nearest allowed clip length ≥ the scene's, else the longest (engine: choose_duration). */
export function chooseDuration(sceneSeconds, spec) {
  if (!spec.durations) return null;
  const allowed = [...spec.durations].sort((a, b) => a - b);
  const fitting = allowed.filter((d) => d >= sceneSeconds - 1e-6);
  return fitting.length ? fitting[0] : allowed[allowed.length - 1];
}

function heygenSpeechSeconds(text) {
  const t = (text || "").trim();
  const words = t.includes(" ") ? t.split(/\s+/).filter(Boolean).length : Math.max(1, Math.floor([...t].length / 3));
  return words / HEYGEN_WORDS_PER_SECOND;
}

class EstimateError extends Error {
  constructor(field, message) { super(message); this.field = field; }
}

/**
 * Estimate one scene.
 * scene: {duration (s), narration}; options: {resolution, usd_per_credit, price_usd_per_run,
 * price_usd_per_second, duration_input}; aspect: "9:16" | "1:1" | "16:9".
 * → {usd (null: unknown), basis, clipSeconds} or throws EstimateError for a job the engine would refuse.
 */
export function estimateScene(provider, model, scene, options = {}, aspect = "9:16") {
  const p = PROVIDERS[provider];
  if (!p) throw new EstimateError("provider", `unknown provider ${provider}`);
  model = String(model || "").trim();
  let spec = p.models[model];
  if (!spec && provider === "replicate" && p.anyModel.test(model)) spec = { ratios: RATIOS_ALL };
  if (!spec) throw new EstimateError("model", `${p.label} has no model ${model || "(none)"}`);
  if (!spec.ratios.includes(aspect)) throw new EstimateError("aspect_ratio", `${p.label} ${model} cannot render ${aspect}`);
  const secs = Number(scene.duration);
  const clip = chooseDuration(secs, spec);
  const res = (options.resolution || spec.defaultResolution || null);
  if (spec.resolutions && !spec.resolutions.includes(res)) {
    throw new EstimateError("resolution", `${model} takes ${spec.resolutions.join(", ")} (got ${res})`);
  }
  switch (provider) {
    case "luma": {
      const rate = LUMA_USD_PER_MPX[model], px = LUMA_PIXELS[res];
      return { usd: round4(px * LUMA_FPS * clip / 1e6 * rate), clipSeconds: clip,
               basis: `Luma ${model}: ${(px / 1e6).toFixed(3)} Mpx × ${LUMA_FPS} fps × ${fmt(clip)} s × $${rate}/Mpx` };
    }
    case "runway": {
      const credits = RUNWAY_CREDITS_PER_SECOND[model] * clip;
      return { usd: round4(credits * RUNWAY_USD_PER_CREDIT), clipSeconds: clip,
               basis: `Runway ${model}: ${RUNWAY_CREDITS_PER_SECOND[model]} credits/s × ${fmt(clip)} s = ${fmt(credits)} credits` };
    }
    case "heygen": {
      const hres = options.resolution || "720p";
      if (!["720p", "1080p"].includes(hres)) throw new EstimateError("resolution", `HeyGen takes 720p or 1080p (got ${hres})`);
      if (!(scene.narration || "").trim()) throw new EstimateError("narration", "HeyGen makes an avatar speak the narration, and this scene has none");
      const idKey = model === "avatar" ? "avatar_id" : "talking_photo_id";
      if (!options[idKey]) throw new EstimateError(idKey, `HeyGen ${model} needs options_json heygen.${idKey}`);
      if (!options.voice_id) throw new EstimateError("voice_id", "HeyGen needs options_json heygen.voice_id");
      const estimate = Math.max(secs, heygenSpeechSeconds(scene.narration));
      const perCredit = options.usd_per_credit != null ? Number(options.usd_per_credit) : HEYGEN_USD_PER_CREDIT;
      const billed = Math.max(1, Math.ceil(estimate / HEYGEN_BILLING_STEP_S - 1e-9)) * HEYGEN_BILLING_STEP_S;
      const credits = HEYGEN_CREDITS_PER_MINUTE[model] * billed / 60;
      return { usd: round4(credits * perCredit), clipSeconds: estimate,
               basis: `HeyGen ${model}: ${estimate.toFixed(1)} s billed as ${billed} s = ${fmt(credits)} credits at $${fmt(perCredit)}/credit` };
    }
    case "fal": {
      if (model in FAL_PER_VIDEO) return { usd: FAL_PER_VIDEO[model], clipSeconds: null, basis: `fal ${model}: $${FAL_PER_VIDEO[model]} per video` };
      const [base, extra] = FAL_KLING[model];
      const s = Math.max(5, clip || 5);
      return { usd: round4(base + (s - 5) * extra), clipSeconds: s, basis: `fal ${model}: $${base} for 5 s + $${extra}/s beyond (${fmt(s)} s)` };
    }
    case "veo": {
      let rate = res === "4k" ? VEO_4K_USD_PER_SECOND[model] : undefined;
      if (rate === undefined) rate = VEO_USD_PER_SECOND[model];
      return { usd: round4(rate * clip), clipSeconds: clip, basis: `Google Veo ${model}: $${rate}/s × ${fmt(clip)} s` };
    }
    case "replicate": {
      const name = model.split(":")[0];
      const s = options.duration_input ? (pyRound(secs) || secs) : secs;
      if (options.price_usd_per_run != null) {
        const v = Number(options.price_usd_per_run);
        return { usd: round4(v), clipSeconds: null, basis: `Replicate ${name}: $${fmt(v)} per run (options)` };
      }
      if (options.price_usd_per_second != null) {
        const v = Number(options.price_usd_per_second);
        return { usd: round4(v * s), clipSeconds: s, basis: `Replicate ${name}: $${fmt(v)}/s × ${fmt(s)} s (options)` };
      }
      const row = REPLICATE_PRICES[name];
      if (row && row.per_run != null) return { usd: row.per_run, clipSeconds: null, basis: `Replicate ${name}: $${fmt(row.per_run)} per run` };
      return { usd: null, clipSeconds: null, basis: `unknown price for Replicate ${name}: set price_usd_per_run or price_usd_per_second in options_json` };
    }
  }
  throw new EstimateError("provider", `unknown provider ${provider}`);
}

/**
 * Estimate a run over scenes (or one typical scene when the storyboard is not known yet).
 * → {total, unknown, scenes: [{usd, basis, clipSeconds} | {error}], error, withinBudget, maxCost}
 */
export function estimateRun(provider, model, scenes, options = {}, aspect = "9:16", maxCost = null) {
  const out = { total: 0, unknown: 0, scenes: [], error: null, maxCost: maxCost > 0 ? maxCost : null };
  for (const sc of scenes) {
    try {
      const e = estimateScene(provider, model, sc, options, aspect);
      out.scenes.push(e);
      if (e.usd == null) out.unknown += 1; else out.total += e.usd;
    } catch (err) {
      if (!(err instanceof EstimateError)) throw err;
      out.error = out.error || { field: err.field, message: err.message };
      out.scenes.push({ error: err.message });
    }
  }
  out.total = round4(out.total);
  out.withinBudget = out.maxCost == null || (out.unknown === 0 && !out.error && out.total <= out.maxCost + 1e-9);
  return out;
}

export function formatUsd(x) {
  if (x == null) return "?";
  return x < 0.1 && x > 0 ? `$${x.toFixed(3)}` : `$${x.toFixed(2)}`;
}

/**
 * ProviderRender's options_json → {model, options, error} for `provider` (as the node reads it):
 * top-level keys are shared, a provider's section overrides them, and a "model" there (or at the
 * top) replaces the model widget. Keys are never read here: only prices, resolution and such matter.
 */
export function optionsFor(text, provider, widgetModel) {
  let data = {};
  if (text && String(text).trim()) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      return { model: widgetModel, options: {}, error: `options_json is not valid JSON (${e.message})` };
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      return { model: widgetModel, options: {}, error: "options_json must be a JSON object" };
    }
  }
  const shared = {};
  for (const [k, v] of Object.entries(data)) if (!(k in PROVIDERS) && k !== "seed" && k !== "model") shared[k] = v;
  const section = { ...((data[provider] && typeof data[provider] === "object") ? data[provider] : {}) };
  const model = section.model != null ? String(section.model) : data.model != null ? String(data.model) : widgetModel;
  delete section.model;
  return { model, options: { ...shared, ...section }, error: null };
}
