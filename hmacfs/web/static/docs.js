// Renders /openapi.json as plain HTML (no framework, no CDN, no inline code: it runs
// under the page's strict Content-Security-Policy). DOM nodes are built with
// textContent only, so nothing in the document is ever parsed as HTML.
const METHODS = ["get", "head", "options", "post", "put", "patch", "delete"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function schemaText(schema) {
  return JSON.stringify(schema ?? {}, null, 2);
}

function parameterTable(parameters) {
  if (!parameters?.length) return el("p", {}, "No parameters.");
  const rows = parameters.map((p) =>
    el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
      el("td", {}, p.required ? "yes" : ""), el("td", {}, el("code", {}, schemaText(p.schema))),
      el("td", {}, p.description ?? "")));
  return el("table", {}, el("tr", {}, ...["name", "in", "required", "schema", "description"].map((h) => el("th", {}, h))), ...rows);
}

function contentBlock(content) {
  const block = el("div");
  for (const [type, media] of Object.entries(content ?? {})) {
    block.append(el("p", {}, el("code", {}, type)), el("pre", {}, schemaText(media.schema)));
  }
  return block;
}

function responsesBlock(responses) {
  const block = el("div", {}, el("h4", {}, "Responses"));
  for (const [status, response] of Object.entries(responses ?? {})) {
    block.append(el("p", {}, el("strong", {}, status + " "), response.description ?? ""));
    const headers = Object.keys(response.headers ?? {});
    if (headers.length) block.append(el("p", {}, "Headers: " + headers.join(", ")));
    block.append(contentBlock(response.content));
  }
  return block;
}

function operation(path, method, op) {
  const body = el("div", {},
    op.description ? el("p", {}, op.description) : "",
    el("p", {}, "Security: " + (op.security ?? []).map((s) => Object.keys(s).join("+") || "none").join(" | ")),
    el("h4", {}, "Parameters"), parameterTable(op.parameters));
  if (op.requestBody) body.append(el("h4", {}, "Request body"), contentBlock(op.requestBody.content));
  if (op["x-websocket"]) body.append(el("h4", {}, "WebSocket messages"), el("pre", {}, schemaText(op["x-websocket"])));
  body.append(responsesBlock(op.responses));
  const head = el("summary", {}, el("span", { class: "method " + method }, method), " ",
    el("code", { class: "path" }, path), " ", el("span", { class: "summary" }, op.summary ?? ""));
  return el("details", { class: "op" }, head, body);
}

function render(doc) {
  const main = document.getElementById("api");
  const toc = document.getElementById("toc");
  main.replaceChildren(el("p", {}, doc.info?.description ?? ""));
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const tag = item[method].tags?.[0] ?? "Other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(path, method, item[method]));
    }
  }
  const links = el("ul");
  for (const [tag, ops] of byTag) {
    const id = "tag-" + tag.replace(/[^A-Za-z0-9]+/g, "-");
    links.append(el("li", {}, el("a", { href: "#" + id }, `${tag} (${ops.length})`)));
    main.append(el("section", { class: "tag", id }, el("h2", {}, tag), ...ops));
  }
  const schemas = el("section", { class: "tag", id: "schemas" }, el("h2", {}, "Schemas"));
  for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) {
    schemas.append(el("details", { class: "op", id: "schema-" + name },
      el("summary", {}, el("code", {}, name)), el("div", {}, el("pre", {}, schemaText(schema)))));
  }
  links.append(el("li", {}, el("a", { href: "#schemas" }, "Schemas")));
  main.append(schemas);
  toc.replaceChildren(links);
}

fetch("/openapi.json")
  .then((response) => response.json())
  .then(render)
  .catch((error) => {
    document.getElementById("api").replaceChildren(el("p", {}, "Could not load /openapi.json: " + error));
  });
