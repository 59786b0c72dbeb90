// The page of `mobilenets serve`: images in (drop, paste, file input, webcam), top-k bars out.
// Plain JavaScript, no libraries: it talks only to this server's /api/*.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { models: [], defaultModel: null, inFlight: 0, waiting: [], evaluations: null, cards: 0 };
const MAX_IN_FLIGHT = 2;  // the server queues more, but two keep both cores busy without a 503

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ------------------------------------------------------------------ API

async function api(path, options) {
  const response = await fetch(path, options);
  let body;
  try { body = await response.json(); } catch (e) { body = { error: `HTTP ${response.status}` }; }
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// At most MAX_IN_FLIGHT predictions at once; the rest wait their turn here.
function predict(blob, name, model) {
  return new Promise((resolve, reject) => {
    state.waiting.push({ blob, name, model, resolve, reject });
    pump();
  });
}

function pump() {
  while (state.inFlight < MAX_IN_FLIGHT && state.waiting.length) {
    const job = state.waiting.shift();
    state.inFlight += 1;
    const form = new FormData();
    form.append("image", job.blob, job.name);
    form.append("model", job.model);
    form.append("top_k", String(Math.max(1, parseInt($("#topk").value, 10) || 5)));
    api("/api/predict", { method: "POST", body: form })
      .then(job.resolve, job.reject)
      .finally(() => { state.inFlight -= 1; pump(); });
  }
}

// ------------------------------------------------------------------ models

async function loadModels() {
  const info = await api("/api/models");
  state.models = info.models.map((m) => m.name);
  state.defaultModel = info.default;
  $("#target").textContent = info.target;
  const select = $("#model");
  select.replaceChildren();
  for (const m of info.models) {
    const option = el("option", "", `${m.name} (${m.kind}${m.bytes ? ", " + formatBytes(m.bytes) : ""})`);
    option.value = m.name;
    select.appendChild(option);
  }
  select.value = info.default;
  const compare = $("#compare");
  compare.disabled = state.models.length < 2;
  compare.checked = state.models.length > 1;
  compare.parentElement.title = state.models.length < 2 ? "only one model here" : compare.parentElement.title;
}

function formatBytes(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`;
}

function chosenModels() {
  return $("#compare").checked ? state.models : [$("#model").value || state.defaultModel];
}

// ------------------------------------------------------------------ results

function renderPrediction(result) {
  const box = el("div", "pred");
  box.dataset.model = result.model;
  const head = el("div", "predhead");
  head.appendChild(el("span", "modelname", result.model));
  head.appendChild(el("span", "ms", `${result.ms.toFixed(1)} ms`));
  head.title = `model ${result.ms} ms, decoding ${result.decode_ms} ms`;
  box.appendChild(head);
  const list = el("ol", "bars");
  result.predictions.forEach((p, i) => {
    const item = el("li", i === 0 ? "top" : "");
    item.appendChild(el("span", "label", p.label));
    const track = el("span", "track");
    const bar = el("span", "bar");
    bar.style.width = `${(100 * p.score).toFixed(1)}%`;
    track.appendChild(bar);
    item.appendChild(track);
    item.appendChild(el("span", "score", `${(100 * p.score).toFixed(1)}%`));
    list.appendChild(item);
  });
  box.appendChild(list);
  return box;
}

function renderError(model, message) {
  const box = el("div", "pred failed");
  if (model) box.appendChild(el("div", "predhead", model));
  box.appendChild(el("div", "error", message));
  return box;
}

async function classify(blob, name, target) {
  const card = target || el("div", "card");
  card.replaceChildren();
  const thumb = el("img", "thumb");
  thumb.alt = name;
  thumb.src = URL.createObjectURL(blob);
  thumb.onload = () => URL.revokeObjectURL(thumb.src);
  card.appendChild(thumb);
  card.appendChild(el("div", "name", name));
  const row = el("div", "preds");
  card.appendChild(row);
  if (!target) {
    state.cards += 1;
    $("#results").prepend(card);
  }
  const models = chosenModels();
  const slots = models.map((m) => {
    const slot = el("div", "pred pending", `${m}: classifying…`);
    row.appendChild(slot);
    return slot;
  });
  const results = await Promise.all(models.map((m, i) => predict(blob, name, m).then(
    (r) => { slots[i].replaceWith(renderPrediction(r)); return r; },
    (e) => { slots[i].replaceWith(renderError(models.length > 1 ? m : "", e.message)); return null; })));
  const tops = new Set(results.filter(Boolean).map((r) => r.predictions[0].label));
  card.dataset.top1 = [...tops].join(" | ");
  if (tops.size > 1) {
    card.classList.add("disagree");
    card.insertBefore(el("div", "badge", `the models disagree: ${[...tops].join(" vs ")}`), row);
  }
  if (!target) summarize();
}

function summarize() {
  const cards = document.querySelectorAll("#results .card");
  const differ = document.querySelectorAll("#results .card.disagree").length;
  const failed = document.querySelectorAll("#results .card .error").length;
  let text = `${cards.length} image${cards.length === 1 ? "" : "s"}`;
  if ($("#compare").checked) text += `; the models disagree on ${differ}`;
  if (failed) text += `; ${failed} error${failed === 1 ? "" : "s"}`;
  $("#summary").textContent = text;
}

function addFiles(files) {
  for (const f of files) classify(f, f.name || "pasted image");
}

// ------------------------------------------------------------------ inputs

function setUpInputs() {
  const drop = $("#drop");
  $("#file").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => { e.preventDefault(); addFiles(e.dataTransfer.files); });
  document.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData || {}).items || []]
      .filter((i) => i.kind === "file").map((i) => i.getAsFile()).filter(Boolean);
    if (files.length) { e.preventDefault(); addFiles(files); }
  });
  $("#clear").addEventListener("click", () => { $("#results").replaceChildren(); summarize(); });
  $("#compare").addEventListener("change", summarize);
}

// ------------------------------------------------------------------ webcam

let stream = null;
let liveTimer = null;
let liveBusy = false;

function setUpWebcam() {
  const ok = navigator.mediaDevices && navigator.mediaDevices.getUserMedia;
  if (!ok) {
    $("#webcam").disabled = true;
    $("#camnote").textContent = "The webcam needs a secure page (http://127.0.0.1 or localhost, or https).";
    return;
  }
  $("#webcam").addEventListener("click", async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (e) {
      $("#camnote").textContent = `No webcam: ${e.message || e.name}`;
      return;
    }
    $("#video").srcObject = stream;
    $("#camera").hidden = false;
  });
  $("#snap").addEventListener("click", async () => {
    const blob = await frame();
    if (blob) classify(blob, `webcam ${new Date().toLocaleTimeString()}.jpg`);
  });
  $("#live").addEventListener("change", (e) => {
    clearInterval(liveTimer);
    if (!e.target.checked) return;
    const card = el("div", "card live");
    $("#livecard").replaceChildren(card);
    liveTimer = setInterval(async () => {
      if (liveBusy) return;
      liveBusy = true;
      const blob = await frame();
      if (blob) await classify(blob, "live", card);
      liveBusy = false;
    }, 500);
  });
  $("#stopcam").addEventListener("click", () => {
    clearInterval(liveTimer);
    $("#live").checked = false;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    $("#camera").hidden = true;
  });
}

function frame() {
  const video = $("#video");
  if (!video.videoWidth) return Promise.resolve(null);
  const canvas = el("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

// ------------------------------------------------------------------ evaluation tab

async function showEvaluations() {
  if (state.evaluations === null) {
    try {
      state.evaluations = (await api("/api/evaluations")).evaluations;
    } catch (e) {
      $("#evalbody").replaceChildren(el("p", "error", e.message));
      return;
    }
    const pick = $("#evalpick");
    pick.replaceChildren();
    state.evaluations.forEach((ev, i) => {
      const option = el("option", "", `${ev.name} (${ev.count} images${ev.split ? ", " + ev.split : ""})`);
      option.value = String(i);
      pick.appendChild(option);
    });
    pick.addEventListener("change", () => renderEvaluation(state.evaluations[+pick.value]));
  }
  if (!state.evaluations.length) {
    $("#evalbody").replaceChildren(el("p", "muted",
      "No evaluation here yet. Training writes one for a run's test split; " +
      "`mobilenets evaluate RUN --split val` writes others."));
    return;
  }
  renderEvaluation(state.evaluations[+$("#evalpick").value || 0]);
}

function renderEvaluation(ev) {
  const body = $("#evalbody");
  body.replaceChildren();
  const figures = el("div", "figures");
  const figure = (name, value) => {
    if (value === null || value === undefined) return;
    const f = el("div", "figure");
    f.appendChild(el("div", "value", typeof value === "number" && value <= 1 ? `${(100 * value).toFixed(1)}%` : String(value)));
    f.appendChild(el("div", "muted", name));
    figures.appendChild(f);
  };
  figure("accuracy", ev.accuracy);
  figure(`top-${ev.k} accuracy`, ev.top_k_accuracy);
  figure("macro F1", ev.macro_f1);
  figure("images", ev.count);
  figure("misclassified", ev.misclassified);
  body.appendChild(figures);

  const row = el("div", "evalrow");
  const table = el("table", "perclass");
  const head = table.createTHead().insertRow();
  ["class", "precision", "recall", "F1", "images"].forEach((h) => head.appendChild(el("th", "", h)));
  const tbody = table.createTBody();
  for (const c of ev.per_class || []) {
    const tr = tbody.insertRow();
    tr.appendChild(el("td", "", c.class));
    [c.precision, c.recall, c.f1].forEach((v) => tr.appendChild(el("td", "num", v.toFixed(3))));
    tr.appendChild(el("td", "num", String(c.support)));
  }
  row.appendChild(table);
  if (ev.confusion_png) {
    const img = el("img", "confusion");
    img.alt = "confusion matrix";
    img.src = ev.confusion_png;
    row.appendChild(img);
  }
  body.appendChild(row);

  body.appendChild(el("h3", "", `Misclassified (${ev.misclassified}, most confident first` +
    (ev.gallery.length < ev.misclassified ? `; the first ${ev.gallery.length}` : "") + ")"));
  const gallery = el("div", "gallery");
  for (const m of ev.gallery) {
    const item = el("figure", "miss");
    if (m.thumb) {
      const img = el("img");
      img.src = m.thumb;
      img.alt = m.path;
      item.appendChild(img);
    }
    const caption = el("figcaption");
    caption.appendChild(el("div", "", `${m.true} → ${m.predicted}`));
    caption.appendChild(el("div", "muted", `${(100 * m.confidence).toFixed(0)}% · ${m.path.split("/").pop()}`));
    caption.title = m.path;
    item.appendChild(caption);
    gallery.appendChild(item);
  }
  body.appendChild(gallery);
}

// ------------------------------------------------------------------ tabs

function setUpTabs() {
  document.querySelectorAll("nav .tab").forEach((tab) => tab.addEventListener("click", () => {
    document.querySelectorAll("nav .tab").forEach((t) => t.classList.toggle("active", t === tab));
    document.querySelectorAll(".panel").forEach((p) => { p.hidden = p.id !== tab.dataset.tab; });
    if (tab.dataset.tab === "evaluation") showEvaluations();
  }));
}

async function start() {
  setUpTabs();
  setUpInputs();
  setUpWebcam();
  try {
    await loadModels();
    document.body.dataset.ready = "1";
  } catch (e) {
    $("#summary").textContent = `Cannot list the models: ${e.message}`;
  }
}

start();
