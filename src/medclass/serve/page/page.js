// The medclass page: pick a served model, upload an image, show what POST /predict answers.
// Plain JavaScript with no dependencies, so the page needs nothing beyond this server. Server text is always put
// in with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem("medclass-key") || "", models: {}, file: null, shownByBrowser: false };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    // Styles through the CSSOM: the page's Content-Security-Policy refuses inline style attributes.
    if (name === "text") node.textContent = value;
    else if (name === "style") Object.assign(node.style, value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function call(path, options = {}) {
  const headers = state.key ? { "X-API-Key": state.key } : {};
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({ detail: `${response.status} ${response.statusText}` }));
  if (response.status === 401) $("key-row").hidden = false;
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

async function waitUntilReady() {
  for (;;) {
    const response = await fetch("health");
    const health = await response.json();
    if (health.api_key_required) $("key-row").hidden = false;
    if (response.ok) return;
    if (health.status === "failed") throw new Error(`the server could not load its models: ${health.error}`);
    showError("models are loading…");
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function loadModels() {
  const select = $("model");
  const { models } = await call("models");
  state.models = Object.fromEntries(models.map((m) => [m.name, m]));
  select.replaceChildren(...models.map((m) => el("option", { value: m.name, text: m.name })));
  select.disabled = false;
  showError("");
  showModel();
}

const METHOD_NAMES = { gradcam: "Grad-CAM", otsu: "Otsu boxes (no model)" };
const CHANNELS = { 1: "1 channel (grayscale)", 3: "3 channels (RGB)" };

// What the model is for, before any upload: its description, data, modality, input and tasks.
function aboutModel(model) {
  const rows = [["Data", model.data || "not recorded"], ["Modality", model.modality || "not recorded"],
    ["Input", `${model.input.size} × ${model.input.size} px, ${CHANNELS[model.input.channels] ||
                `${model.input.channels} channels`}`]];
  for (const task of model.tasks) rows.push([`Task ${task.name}`, `${task.kind}: ${task.classes.join(", ")}`]);
  const table = el("table", { class: "about" },
    ...rows.map(([name, value]) => el("tr", {}, el("th", { text: name }), el("td", { text: value }))));
  const parts = [];
  if (model.description) parts.push(el("p", { class: "description", text: model.description }));
  parts.push(table);
  for (const warning of model.warnings || []) parts.push(el("p", { class: "warning", role: "alert", text:
    `Warning: ${warning}. Its answers are shown, but may be no better than chance.` }));
  return parts;
}

function showExplainChoices(model) {
  const explain = $("explain");
  const kept = explain.value;
  const methods = model.explain.methods;
  explain.replaceChildren(el("option", { value: "", text: "no explanation" }),
    ...methods.map((m) => el("option", { value: m, text: METHOD_NAMES[m] || m })));
  explain.value = methods.includes(kept) ? kept : "";
  $("polarity").replaceChildren(
    el("option", { value: "", text: `polarity: ${model.explain.polarity} (model's modality)` }),
    ...["auto", "dark", "bright"].map((p) => el("option", { value: p, text: `polarity: ${p}` })));
  showPolarity();
}

function showPolarity() {
  $("polarity").hidden = $("explain").value !== "otsu";
}

function showModel() {
  const model = state.models[$("model").value];
  const card = $("model-card");
  card.replaceChildren();
  if (!model) return;
  card.append(el("p", { text: `${model.architecture} · ${model.backend} · version ${model.version.slice(0, 12)}` }));
  card.append(...aboutModel(model));
  showExplainChoices(model);
  for (const task of model.tasks) {
    const calibration = task.calibrated ? `calibrated (temperature ${task.temperature.toFixed(3)})` : "not calibrated";
    const sets = task.prediction_sets ? `; prediction sets (${task.prediction_sets.description})` : "";
    card.append(el("p", { text: `${task.name} (${task.kind}): ${task.decision}; ${calibration}${sets}` }));
    const metrics = model.test_metrics && model.test_metrics[task.name];
    if (!metrics) continue;
    const level = metrics.ci_level ? `${Math.round(metrics.ci_level * 100)}% CI` : "CI";
    const table = el("table", { class: "metrics" },
      el("tr", {}, el("th", { text: `Test set (n = ${metrics.n})` }), el("th", { text: "value" }),
         el("th", { text: level })));
    for (const [key, name] of Object.entries(metrics.names)) {  // the evaluation report's headline rows
      const ci = metrics[`${key}_ci`];
      table.append(el("tr", {}, el("td", { text: name }), el("td", { text: metrics[key].toFixed(3) }),
                      el("td", { text: ci ? `${ci[0].toFixed(3)}–${ci[1].toFixed(3)}` : "" })));
    }
    card.append(table);
  }
  if (!model.test_metrics) {
    card.append(el("p", { text: "No test-set evaluation recorded for this model (`medclass evaluate` makes one)." }));
  }
  card.append(el("p", { class: "guard-about", text: guardAbout(model.input_guard) }));
  updateButton();
}

// What the model card says of the input guard, which checks whether an upload resembles the training images.
function guardAbout(guard) {
  if (!guard || !guard.fitted) return "No input guard is fitted for this model: only the cheap checks (blank " +
    "image, colour photo, odd shape) look at uploads.";
  const measured = guard.val_accepted === null || guard.val_accepted === undefined ? "" :
    ` (${(100 * guard.val_accepted).toFixed(1)}% measured)`;
  return `Input guard: ${guard.detector} (${guard.description}), threshold ${guard.threshold.toPrecision(4)}, ` +
    `accepting ${Math.round(100 * guard.accept)}% of the validation images${measured}.`;
}

function setFile(file) {
  state.file = file || null;
  $("drop-text").textContent = file ? `${file.name} (${Math.ceil(file.size / 1024)} KiB)` :
    "Drop a PNG, JPEG or DICOM image here, or click to choose one";
  $("result").hidden = true;
  state.shownByBrowser = false;
  if (file) {
    // DICOM is not an image a browser can show: then the server sends back the decoded picture with its answer.
    const image = $("image");
    image.onload = () => { state.shownByBrowser = true; };
    image.src = URL.createObjectURL(file);
  }
  updateButton();
}

function updateButton() {
  $("predict").disabled = !(state.file && state.models[$("model").value]);
}

async function predict() {
  const model = state.models[$("model").value];
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("model", model.name);
  if ($("explain").value) form.append("explain", $("explain").value);
  if ($("explain").value === "otsu" && $("polarity").value) form.append("polarity", $("polarity").value);
  if (!state.shownByBrowser) form.append("preview", "true");
  $("predict").disabled = true;
  showError("");
  try {
    showAnswer(model, await call("predict", { method: "POST", body: form }));
  } catch (error) {
    showError(error.message);
  } finally {
    updateButton();
  }
}

const DRAWN_BOXES = 3;  // more than a few boxes hide the image; the answer's JSON has them all

// The explanation's best boxes drawn over the image, in the image's own pixels (the SVG's viewBox): the best
// thickest.
function drawBoxes(explanation) {
  const svg = $("boxes");
  svg.replaceChildren();
  svg.toggleAttribute("hidden", !explanation);  // an SVG element has no `hidden` property, only the attribute
  if (!explanation) return;
  const [width, height] = explanation.image_size;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  explanation.boxes.slice(0, DRAWN_BOXES).forEach((box, rank) => {
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const attrs = { x: box.x0, y: box.y0, width: box.x1 - box.x0, height: box.y1 - box.y0,
                    class: rank === 0 ? "best" : "other", "data-score": box.score };
    for (const [name, value] of Object.entries(attrs)) rect.setAttribute(name, String(value));
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `box (${box.x0}, ${box.y0})–(${box.x1}, ${box.y1}), score ${box.score}`;
    rect.append(title);
    svg.append(rect);
  });
}

function explanationCaption(explanation) {
  const name = METHOD_NAMES[explanation.method] || explanation.method;
  const found = explanation.boxes.length;
  const count = `${found} box${found === 1 ? "" : "es"}` + (found > DRAWN_BOXES ? `, the best ${DRAWN_BOXES} drawn` : "");
  if (explanation.method === "otsu") {
    return `${name}, polarity ${explanation.polarity}: ${count}, beside the answer ${explanation.class}`;
  }
  return `${name}: where the evidence for ${explanation.class} (task ${explanation.task}) lies; ${count}`;
}

function showAnswer(model, answer) {
  window.lastAnswer = answer;  // for scripts and tests: the JSON behind what is shown
  if (answer.image_png) $("image").src = `data:image/png;base64,${answer.image_png}`;
  const explanation = answer.explanation;
  $("overlay-figure").hidden = !explanation;
  drawBoxes(explanation);
  $("image-caption").textContent = explanation ? `Image, ${explanationCaption(explanation)}` : "Image";
  if (explanation) {
    $("overlay").src = `data:image/png;base64,${explanation.overlay_png}`;
    $("overlay-caption").textContent = explanationCaption(explanation);
  }
  const guard = (answer.extras || {}).input_guard;
  const flagged = showGuard(guard);
  const cards = model.tasks.map((task) => taskCard(task, answer.tasks[task.name]));
  // said in words on every card, not by the grey alone
  if (flagged) for (const card of cards) card.append(el("p", { class: "flag-note", text: "Greyed: the " +
    "probabilities of an image unlike the training images (see the warning above)." }));
  $("tasks").replaceChildren(...cards);
  $("tasks").classList.toggle("flagged", flagged);
  $("meta").textContent = `model ${answer.model} (version ${answer.model_version.slice(0, 12)}) · image sha256 ` +
    `${answer.input_sha256} · ${answer.latency_ms.toFixed(0)} ms · audit record ${answer.audit_id}`;
  $("result").hidden = false;
  $("result").dataset.auditId = answer.audit_id;
}

const FOREIGN = "This image does not look like the images this model was trained on";

// The input guard's verdict above the answers: a flagged upload prominently, with its reasons (the probabilities
// below stay, marked); no guard fitted, quietly; in distribution, a quiet line. Returns whether it was flagged.
function showGuard(guard) {
  const box = $("guard");
  box.replaceChildren();
  box.hidden = !guard;
  if (!guard) return false;
  const flagged = guard.in_distribution === false;
  box.className = flagged ? "guard ood" : "guard quiet";
  box.dataset.inDistribution = String(guard.in_distribution);
  if (flagged) {
    box.setAttribute("role", "alert");
    box.append(el("p", { class: "ood-title", text: FOREIGN }),
      el("ul", {}, ...guard.reasons.map((reason) => el("li", { text: reason }))),
      el("p", { text: "The probabilities below are still shown, greyed: they describe an image unlike any the " +
                      "model learnt from, and should not be relied on." }));
    if (!guard.fitted) box.append(el("p", { class: "rule", text: "No input guard is fitted for this model; " +
                                                                 "the cheap checks found this." }));
    return true;
  }
  box.removeAttribute("role");
  box.append(el("p", { text: guard.fitted ? `Input guard: in distribution (${guard.detector} score ` +
    `${guard.score.toPrecision(4)} ≤ threshold ${guard.threshold.toPrecision(4)})` :
    "No input guard is fitted for this model: nothing checked that this image resembles its training images." }));
  return false;
}

// A task's conformal prediction set in words: one class is the answer; several, the ones the model cannot tell
// apart for this image; none (an empty LAC set), no class plausible enough.
function predictionSet(task, classes) {
  const coverage = task.prediction_sets ? `${Math.round(100 * task.prediction_sets.coverage)}% coverage` : "coverage";
  const names = classes.length > 1 ? `${classes.slice(0, -1).join(", ")} or ${classes[classes.length - 1]}` :
    classes[0];
  const text = classes.length === 0 ? "empty: no class is plausible enough for this image" :
    classes.length === 1 ? names : `${names} — the model cannot tell these apart for this image`;
  return el("p", { class: "prediction-set", "data-prediction-set": classes.join("|"),
                   text: `Prediction set (${coverage}): ${text}` });
}

function taskCard(task, result) {
  const chosen = Array.isArray(result.label) ? result.label : [result.label];
  const label = Array.isArray(result.label) ? (result.label.join(", ") || "no finding") : result.label;
  let rule = "most probable class";
  if (task.kind === "binary") rule = `${task.positive_class} when p ≥ ${result.threshold.toFixed(3)} ` +
                                     `(threshold: ${result.threshold_source})`;
  if (task.kind === "multilabel") rule = `each finding when p ≥ its threshold (${result.threshold_source})`;
  rule += result.calibrated ? "; probabilities calibrated" : "; probabilities not calibrated";
  // data-label: the label as `medclass predict` writes it (findings joined by "|"), for scripts and tests
  const card = el("div", { class: "task", "data-task": task.name }, el("h2", { text: task.name }),
    el("p", { class: "label", text: label, "data-label": chosen.join("|") }), el("p", { class: "rule", text: rule }));
  if (Array.isArray(result.prediction_set)) card.append(predictionSet(task, result.prediction_set));
  for (const name of task.classes) {
    const p = result.probabilities[name];
    const bar = el("div", { class: "bar" }, el("div", { class: "fill", style: { width: `${(100 * p).toFixed(2)}%` } }));
    const threshold = task.kind === "multilabel" ? result.threshold[name] :
      task.kind === "binary" && name === task.positive_class ? result.threshold : null;
    if (threshold !== null && threshold !== undefined) {
      bar.append(el("div", { class: "mark", style: { left: `${(100 * threshold).toFixed(2)}%` },
                             title: `threshold ${threshold}` }));
    }
    const classes = ["bar-row", meaning(task, name), ...(chosen.includes(name) ? ["chosen"] : [])];
    card.append(el("div", { class: classes.join(" "), "data-class": name, "data-probability": String(p) },
      el("span", { class: "name", text: name, title: name }), bar,
      el("span", { class: "value", text: p.toFixed(4) })));
  }
  return card;
}

// What a class means, which its bar's colour says: a finding (a binary task's positive class, every multi-label
// finding), its absence (a binary task's other class), or one of several classes no colour ranks (multiclass).
function meaning(task, name) {
  if (task.kind === "multilabel") return "finding";
  if (task.kind === "binary") return name === task.positive_class ? "finding" : "absence";
  return "category";
}

function wireDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) setFile(event.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (event) => setFile(event.target.files[0]));
}

async function start() {
  wireDrop();
  $("model").addEventListener("change", () => { showModel(); $("result").hidden = true; });
  $("predict").addEventListener("click", predict);
  $("explain").addEventListener("change", showPolarity);
  $("key-row").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("api-key").value;
    sessionStorage.setItem("medclass-key", state.key);
    loadModels().catch((error) => showError(error.message));
  });
  try {
    await waitUntilReady();
    await loadModels();
  } catch (error) {
    showError(error.message);
  }
}

start();
