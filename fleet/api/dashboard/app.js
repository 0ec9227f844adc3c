// AdReel Studio: the job API's dashboard. Plain JS over the same routes any client uses (Bearer key, JSON,
// server-sent events read with fetch so the key travels in a header, never in a URL).
"use strict";

const T = {
  en: {
    key: "API key", signin: "Sign in", briefTitle: "Ad brief", brand: "Brand", product: "Product",
    audience: "Audience", cta: "Call to action", duration: "Length (s)", aspect: "Aspect", language: "Language",
    writer: "Script writer", writerTemplate: "Template (no LLM)", writerOpenai: "OpenAI-compatible", size: "Size",
    draft: "Draft (180p)", approvalAsk: "Let me approve the script before rendering", make: "Make the ad",
    jobsTitle: "Jobs", filterStatus: "Status", filterBrand: "Brand", all: "All", status: "Status",
    progress: "Progress", created: "Created", reviewTitle: "Approve the script", time: "Time",
    onScreen: "On screen", keyImage: "Key image", narration: "Narration", approve: "Approve and render", discard: "Discard",
    playerTitle: "Finished ad", review: "Review", play: "Play", download: "Download",
    s_queued: "Queued", s_running: "Running", s_awaiting_approval: "Awaiting approval", s_succeeded: "Done",
    s_failed: "Failed", s_canceled: "Canceled", signedOut: "Enter an API key to see your jobs.",
    badKey: "This key is not accepted.", submitted: "Submitted: ", estimate: "Estimated provider cost: ",
    free: "nothing to pay (rendered on the fleet's own servers)",
    batchTitle: "Many ads from a CSV file", batchFile: "CSV file", variants: "Variants per row",
    batchHint: "One ad per row; the first line names the brief's fields (brand, product, cta, …). The options above apply to every row.",
    uploadBatch: "Upload and make the ads", batchSubmitted: (n, id) => `Batch ${id}: ${n} job(s) submitted`,
    stage: { pending: "waiting for a server",
      script: "writing the script", storyboard: "storyboard and key images", rendering: "rendering",
      "post-processing": "assembling" },
  },
  ko: {
    key: "API 키", signin: "로그인", briefTitle: "광고 브리프", brand: "브랜드", product: "제품", audience: "타깃",
    cta: "행동 유도 문구", duration: "길이(초)", aspect: "화면비", language: "언어", writer: "스크립트 작성",
    writerTemplate: "템플릿 (LLM 없음)", writerOpenai: "OpenAI 호환", size: "크기", draft: "초안 (180p)",
    approvalAsk: "렌더링 전에 스크립트를 승인할게요", make: "광고 만들기", jobsTitle: "작업", filterStatus: "상태",
    filterBrand: "브랜드", all: "전체", status: "상태", progress: "진행률", created: "생성 시각",
    reviewTitle: "스크립트 승인", time: "시간", onScreen: "화면 문구", keyImage: "키 이미지", narration: "내레이션",
    approve: "승인하고 렌더링", discard: "폐기", playerTitle: "완성된 광고", review: "검토", play: "재생",
    download: "다운로드", s_queued: "대기 중", s_running: "진행 중", s_awaiting_approval: "승인 대기",
    s_succeeded: "완료", s_failed: "실패", s_canceled: "취소됨", signedOut: "작업을 보려면 API 키를 입력하세요.",
    badKey: "이 키는 사용할 수 없습니다.", submitted: "제출됨: ", estimate: "예상 외부 서비스 비용: ",
    free: "비용 없음 (자체 서버에서 렌더링)",
    batchTitle: "CSV 파일로 광고 여러 개 만들기", batchFile: "CSV 파일", variants: "행마다 변형 수",
    batchHint: "행마다 광고 하나. 첫 줄에는 브리프 항목 이름(brand, product, cta, …)을 적습니다. 위의 옵션이 모든 행에 적용됩니다.",
    uploadBatch: "업로드하고 광고 만들기", batchSubmitted: (n, id) => `배치 ${id}: 작업 ${n}개 제출됨`,
    stage: { pending: "서버 대기", script: "스크립트 작성",
      storyboard: "스토리보드와 키 이미지", rendering: "렌더링", "post-processing": "편집" },
  },
};
const TERMINAL = new Set(["succeeded", "failed", "canceled", "expired"]);
const MAX_STREAMS = 6;

const state = {
  lang: "en",
  key: sessionStorage.getItem("adreel.key") || "",
  jobs: new Map(),
  streams: new Map(),
  review: null,
  videoUrl: null,
};
state.lang = localStorage.getItem("adreel.lang") || ((navigator.language || "en").startsWith("ko") ? "ko" : "en");

const $ = (sel) => document.querySelector(sel);
const t = (k) => T[state.lang][k] ?? T.en[k] ?? k;
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const kid of kids) e.append(kid);
  return e;
};

function notice(text) { $("#notice").textContent = text || ""; }

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = r.headers.get("Content-Type")?.includes("json") ? await r.json() : null;
  if (!r.ok) {
    const err = new Error(data?.error?.message || `HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return data;
}

// ------------------------------------------------------------------ language
function applyLang() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((n) => { n.placeholder = t(n.dataset.i18nPlaceholder); });
  $("#lang").textContent = state.lang === "ko" ? "English" : "한국어";
  document.querySelectorAll("#downloads button").forEach((b) => { b.textContent = `${t("download")} ${b.dataset.name}`; });
  renderJobs();
  if (state.review) renderReview();
}

// ------------------------------------------------------------------ jobs
function stageText(job) {
  const st = job.adreel?.stage;
  return (T[state.lang].stage || {})[st] || "";
}

function renderJobs() {
  const rows = $("#jobRows");
  const brand = $("#brandFilter").value.trim().toLowerCase();
  const jobs = [...state.jobs.values()].filter((j) => !brand || (j.adreel?.brand || "").toLowerCase().includes(brand))
    .sort((a, b) => (b.created_at || "").localeCompare(a.created_at || ""));
  rows.replaceChildren(...jobs.map((job) => {
    const value = Math.round((job.progress?.value || 0) * 100);
    const actions = el("td");
    if (job.status === "awaiting_approval") actions.append(el("button", { text: t("review"), class: "review", onclick: () => openReview(job.id) }));
    if (job.status === "succeeded") actions.append(el("button", { text: t("play"), class: "play", onclick: () => openPlayer(job.id) }));
    const running = job.status === "running" ? ` · ${stageText(job)}` : "";
    return el("tr", { "data-job": job.id, "data-status": job.status, "data-progress": String(value) },
      el("td", { text: job.adreel?.brand || "—" }),
      el("td", {}, el("span", { class: `badge s-${job.status}`, text: t(`s_${job.status}`) }), running),
      el("td", {}, el("progress", { max: "100", value: String(value) }), ` ${value}%`),
      el("td", { text: new Date(job.created_at).toLocaleString(state.lang === "ko" ? "ko-KR" : "en-GB") }),
      actions);
  }));
}

async function loadJobs() {
  if (!state.key) return;
  const status = $("#statusFilter").value;
  const page = await api("GET", `/api/v2/jobs?limit=50${status ? `&status=${encodeURIComponent(status)}` : ""}`);
  state.jobs = new Map(page.jobs.map((j) => [j.id, j]));
  renderJobs();
  for (const job of page.jobs) if (!TERMINAL.has(job.status)) follow(job.id);
}

// Live progress: the job's event stream, read with fetch (EventSource cannot send the key in a header).
async function follow(id) {
  if (state.streams.has(id) || state.streams.size >= MAX_STREAMS) return;
  const ctl = new AbortController();
  state.streams.set(id, ctl);
  try {
    const r = await fetch(`/api/v2/jobs/${id}/events`, { headers: { Authorization: `Bearer ${state.key}` }, signal: ctl.signal });
    if (!r.ok) return;
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf = (buf + value).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let event = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (data) await onEvent(id, event, JSON.parse(data));
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") console.warn("event stream", id, e.message);
  } finally {
    state.streams.delete(id);
  }
}

async function onEvent(id, event, data) {
  const job = state.jobs.get(id);
  if (!job) return;
  if (event === "status") {
    if (data.status !== job.status || TERMINAL.has(data.status) || data.status === "awaiting_approval") {
      Object.assign(job, await api("GET", `/api/v2/jobs/${id}`));  // the whole job: outputs, stage, approval
    }
  } else if (event === "progress") {
    job.status = "running";
    job.progress = { ...job.progress, value: data.value };
    job.adreel = { ...job.adreel, stage: data.stage };
  }
  renderJobs();
}

// ------------------------------------------------------------------ the brief
async function submitBrief(ev) {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const brief = { brand: f.get("brand"), product: f.get("product"), duration_seconds: Number(f.get("duration_seconds")),
    aspect_ratio: f.get("aspect_ratio"), language: f.get("language") };
  for (const k of ["audience", "cta"]) if (f.get(k)) brief[k] = f.get(k);
  try {
    const job = await api("POST", "/api/v2/jobs", {
      workflow_name: "brief_to_ad_upload", brief, approval: f.get("approval") === "on",
      node_inputs: { ScriptLLM: { backend: f.get("backend") }, StoryboardSplit: { resolution: f.get("resolution") } },
    });
    notice(t("submitted") + job.id);
    state.jobs.set(job.id, job);
    renderJobs();
    follow(job.id);
  } catch (e) { notice(e.message); }
}

// ------------------------------------------------------------------ a batch from a CSV file
// The file is read here and sent as text to POST /api/v2/batches, with the brief form's options (script writer,
// size, approval); the server parses the rows as `python -m fleet submit --briefs` does and names a bad row.
async function submitBatch(ev) {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const opts = new FormData($("#briefForm"));
  const file = f.get("file");
  if (!file || !file.size) return;
  try {
    const batch = await api("POST", "/api/v2/batches", {
      workflow_name: "brief_to_ad_upload", csv: await file.text(), variants: Number(f.get("variants") || 1),
      approval: opts.get("approval") === "on",
      node_inputs: { ScriptLLM: { backend: opts.get("backend") }, StoryboardSplit: { resolution: opts.get("resolution") } },
    });
    notice(t("batchSubmitted")(batch.jobs.length, batch.id));
    for (const job of batch.jobs) { state.jobs.set(job.id, job); follow(job.id); }
    renderJobs();
    ev.target.reset();
  } catch (e) { notice(e.message); }
}

// ------------------------------------------------------------------ approval
async function openReview(id) {
  state.review = { id, data: await api("GET", `/api/v2/jobs/${id}/script`) };
  $("#player").hidden = true;
  renderReview();
  $("#review").hidden = false;
  $("#review").scrollIntoView({ block: "start" });
}

function renderReview() {
  const { data } = state.review;
  const est = data.estimate || {};
  $("#estimate").textContent = t("estimate") + (est.total_usd ? `$${est.total_usd.toFixed(2)}` : t("free"));
  $("#sceneRows").replaceChildren(...data.script.scenes.map((s, i) => el("tr", { "data-scene": String(i) },
    el("td", { text: String(i + 1) }),
    el("td", {}, el("img", { class: "key", alt: `${t("keyImage")} ${i + 1}`, "data-n": String(i) })),
    el("td", { text: `${(+s.start).toFixed(1)}–${(+s.end).toFixed(1)} s` }),
    el("td", {}, el("input", { class: "on-screen", value: s.on_screen_text || "", maxlength: "200" })),
    el("td", {}, Object.assign(el("textarea", { class: "narration", maxlength: "1000" }), { value: s.narration || "" })))));
  $("#reviewError").textContent = "";
  const id = state.review.id;
  document.querySelectorAll("#sceneRows img.key").forEach(async (img) => {
    if (Number(img.dataset.n) >= (data.key_images || []).length) return;
    const r = await fetch(`/api/v2/jobs/${id}/key_images/${img.dataset.n}`, { headers: { Authorization: `Bearer ${state.key}` } });
    if (r.ok) img.src = URL.createObjectURL(await r.blob());
  });
}

function editedScript() {
  const script = structuredClone(state.review.data.script);
  document.querySelectorAll("#sceneRows tr").forEach((row) => {
    const s = script.scenes[Number(row.dataset.scene)];
    s.on_screen_text = row.querySelector(".on-screen").value;
    s.narration = row.querySelector(".narration").value;
  });
  return script;
}

async function decide(what) {
  const { id } = state.review;
  $("#reviewError").textContent = "";
  try {
    if (what === "approve") {
      const script = editedScript();
      if (JSON.stringify(script) !== JSON.stringify(state.review.data.script)) {
        state.review.data = await api("PUT", `/api/v2/jobs/${id}/script`, { script });
      }
    }
    const job = await api("POST", `/api/v2/jobs/${id}/${what}`);
    state.jobs.set(id, job);
    state.review = null;
    $("#review").hidden = true;
    renderJobs();
    follow(id);
  } catch (e) { $("#reviewError").textContent = e.message; }
}

// ------------------------------------------------------------------ the player
async function blobOf(output) {
  const r = await fetch(`/api/v2/assets/${output.id}/content`, { headers: { Authorization: `Bearer ${state.key}` } });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return URL.createObjectURL(await r.blob());
}

async function openPlayer(id) {
  const job = await api("GET", `/api/v2/jobs/${id}`);
  const videos = job.outputs.filter((o) => o.type === "video");
  if (!videos.length) return;
  if (state.videoUrl) URL.revokeObjectURL(state.videoUrl);
  state.videoUrl = await blobOf(videos.find((o) => o.content_type === "video/mp4") || videos[0]);
  $("#video").src = state.videoUrl;
  $("#downloads").replaceChildren(...job.outputs.filter((o) => o.type === "video" || o.type === "image").map((o) =>
    el("li", {}, el("button", { class: "secondary", "data-name": o.name, text: `${t("download")} ${o.name}`, onclick: async () => {
      const a = el("a", { href: await blobOf(o), download: o.name });
      a.click();
    } }))));
  $("#review").hidden = true;
  $("#player").hidden = false;
  $("#player").scrollIntoView({ block: "start" });
}

// ------------------------------------------------------------------ start
async function signIn(key) {
  state.key = key;
  try {
    await loadJobs();
    sessionStorage.setItem("adreel.key", key);
    notice("");
  } catch (e) {
    state.key = "";
    notice(e.status === 401 ? t("badKey") : e.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#signin").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("#key").value.trim()); });
  $("#lang").addEventListener("click", () => {
    state.lang = state.lang === "ko" ? "en" : "ko";
    localStorage.setItem("adreel.lang", state.lang);
    applyLang();
  });
  $("#briefForm").addEventListener("submit", submitBrief);
  $("#batchForm").addEventListener("submit", submitBatch);
  $("#statusFilter").addEventListener("change", () => loadJobs().catch((e) => notice(e.message)));
  $("#brandFilter").addEventListener("input", renderJobs);
  $("#approve").addEventListener("click", () => decide("approve"));
  $("#discard").addEventListener("click", () => decide("discard"));
  applyLang();
  if (state.key) signIn(state.key); else notice(t("signedOut"));
  setInterval(() => { if (state.key) loadJobs().catch(() => {}); }, 15000);  // jobs made elsewhere
});
