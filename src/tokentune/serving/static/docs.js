// Renders the OpenAPI document offline: operations, request body schema, responses.
"use strict";

function el(tag, props, ...children) {
  const node = Object.assign(document.createElement(tag), props || {});
  node.append(...children);
  return node;
}

function resolve(spec, schema) {
  if (schema && schema.$ref) return resolve(spec, spec.components.schemas[schema.$ref.split("/").pop()]);
  return schema;
}

function renderOperation(spec, path, method, op) {
  const box = el("section", { className: "op" });
  box.append(el("h3", {}, el("span", { className: "method", textContent: method }), path));
  if (op.summary) box.append(el("p", { textContent: op.summary }));
  if (op.description) box.append(el("p", { className: "muted", textContent: op.description }));
  if (op.security) box.append(el("p", { className: "muted", textContent: "needs Authorization: Bearer KEY" }));
  const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  if (body) {
    box.append(el("strong", { textContent: "Request body" }),
               el("pre", { textContent: JSON.stringify(resolve(spec, body.schema), null, 2) }));
  }
  const rows = Object.entries(op.responses || {}).map(([code, r]) => {
    const content = r.content && r.content["application/json"];
    const schema = content && content.schema && content.schema.$ref ? content.schema.$ref.split("/").pop() : "";
    return el("tr", {}, el("td", { textContent: code }), el("td", { textContent: r.description || "" }),
              el("td", { className: "muted", textContent: schema }));
  });
  box.append(el("strong", { textContent: "Responses" }), el("table", {}, el("tbody", {}, ...rows)));
  return box;
}

async function fetchSpec(key) {
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const response = await fetch("openapi.json", { headers });
  if (response.status === 401) return null;  // the server has an API key: the document names its labels
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

function render(spec) {
  const main = document.getElementById("operations");
  document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version} API`;
  document.getElementById("description").textContent = spec.info.description || "";
  main.replaceChildren();
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) main.append(renderOperation(spec, path, method, op));
  }
  const schemas = (spec.components && spec.components.schemas) || {};
  main.append(el("h2", { textContent: "Schemas" }));
  for (const [name, schema] of Object.entries(schemas)) {
    main.append(el("h3", { textContent: name }), el("pre", { textContent: JSON.stringify(schema, null, 2) }));
  }
}

async function start(key) {
  const main = document.getElementById("operations");
  const form = document.getElementById("key-form");
  try {
    const spec = await fetchSpec(key);
    if (spec === null) {
      form.hidden = false;
      main.textContent = key ? "401: that API key was refused; try again."
                             : "401: this server needs an API key to show its API (Authorization: Bearer KEY).";
      return;
    }
    form.hidden = true;
    render(spec);
  } catch (err) {
    main.textContent = `could not load openapi.json: ${err.message}`;
  }
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  start(document.getElementById("api-key").value.trim());
});
start("");
