// The try-it page: POST the text to /predict and show it with entities highlighted.
// No framework and no build step; user text only ever goes into text nodes, never innerHTML.
"use strict";

const PALETTE = ["#ffd6a5", "#caffbf", "#9bf6ff", "#ffc6ff", "#fdffb6", "#bdb2ff",
                 "#ffadad", "#a0c4ff", "#d0f4de", "#e4c1f9"];
const colours = new Map();  // entity type -> colour, in the order of the model's types

const $ = (id) => document.getElementById(id);

function colourOf(type) {
  if (!colours.has(type)) {
    const n = colours.size;
    // past the palette, spread hues by the golden angle so neighbours stay distinguishable
    colours.set(type, n < PALETTE.length ? PALETTE[n] : `hsl(${Math.round(n * 137.5) % 360} 80% 82%)`);
  }
  return colours.get(type);
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function getJson(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON: reported below */ }
  if (response.status === 401) $("key-row").hidden = false;
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function describeModel(info) {
  const parts = [info.name || "model"];
  if (info.base_model) parts.push(`base ${info.base_model}`);
  parts.push(`types ${info.entity_types.join(", ") || "none"}`);
  const test = info.metrics && info.metrics.test;
  const f1 = test && (test.f1 ?? test.overall_f1 ?? (test.micro && test.micro.f1));
  if (typeof f1 === "number") parts.push(`test F1 ${f1.toFixed(3)}`);
  return parts.join(" · ");
}

function showModelLine(text) {  // one line on the page (style.css), the whole text on hover
  const line = $("model-line");
  line.textContent = text;
  line.title = text;
}

async function loadModel() {
  try {
    const info = await getJson("model", { headers: headers() });
    info.entity_types.forEach(colourOf);
    showModelLine(describeModel(info));
    renderLegend();
  } catch (err) {
    showModelLine(`model information unavailable (${err.message})`);
  }
}

function renderLegend() {
  const legend = $("legend");
  legend.replaceChildren();
  for (const [type, colour] of colours) {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.dataset.label = type;
    swatch.style.background = colour;
    swatch.textContent = type;
    legend.append(swatch);
  }
}

// Offsets from the server count Unicode code points (Python); JavaScript strings count UTF-16
// units, so slice an array of code points or emoji would shift every later highlight.
function renderHighlighted(text, entities) {
  const chars = Array.from(text);
  const box = $("highlighted");
  box.replaceChildren();
  let at = 0;
  for (const e of [...entities].sort((a, b) => a.start - b.start)) {
    if (e.start < at) continue;  // overlapping spans cannot come from one tagging; skip defensively
    box.append(document.createTextNode(chars.slice(at, e.start).join("")));
    const mark = document.createElement("mark");
    mark.dataset.label = e.label;
    mark.style.background = colourOf(e.label);
    mark.title = `${e.label} · score ${e.score.toFixed(3)}`;
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = e.label;
    mark.append(document.createTextNode(chars.slice(e.start, e.end).join("")), tag);
    box.append(mark);
    at = e.end;
  }
  box.append(document.createTextNode(chars.slice(at).join("")));
  if (!entities.length) box.append(Object.assign(document.createElement("em"), {className: "muted", textContent: "  (no entities)"}));
}

async function tag(event) {
  if (event) event.preventDefault();
  const text = $("text").value;
  const button = $("tag");
  const status = $("status");
  button.disabled = true;
  status.className = "muted";
  status.textContent = "tagging…";
  try {
    const started = performance.now();
    const body = await getJson("predict", { method: "POST", headers: headers(), body: JSON.stringify({ texts: [text] }) });
    const result = body.results[0];
    renderHighlighted(result.text, result.entities);
    renderLegend();
    $("json").textContent = JSON.stringify(body, null, 2);
    $("result-section").hidden = false;
    const n = result.entities.length;
    status.textContent = `${n} ${n === 1 ? "entity" : "entities"} in ${Math.round(performance.now() - started)} ms`;
    document.body.dataset.state = "done";  // lets tests wait for the answer
  } catch (err) {
    status.className = "error";
    status.textContent = err.message;
    document.body.dataset.state = "error";
  } finally {
    button.disabled = false;
  }
}

async function start() {
  $("tag-form").addEventListener("submit", tag);
  $("api-key").addEventListener("change", loadModel);
  const params = new URLSearchParams(location.search);
  if (params.has("text")) $("text").value = params.get("text");
  await loadModel();
  if (params.get("auto") === "1" && $("text").value) await tag();
}

start();
