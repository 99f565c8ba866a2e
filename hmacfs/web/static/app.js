// The hmacfs web page: sign in with a token, upload files (with the hmacfs
// module), watch them and the background tasks live over /ws.
import { HmacfsClient } from "/static/hmacfs/index.js";

const TOKEN_KEY = "hmacfs:token";
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const client = new HmacfsClient();
/** @type {Map<string, {upload: import("/static/hmacfs/index.js").Upload, item: HTMLElement}>} */
const active = new Map();
/** Upload task ids whose completion the server announced over /ws. */
const confirmed = new Set();
let socket = null;
let refreshTimer = 0;

// -- formatting ---------------------------------------------------------------
function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(n >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}
function duration(seconds) {
  if (seconds === null || !Number.isFinite(seconds)) return "–";
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}
const STATE_TEXT = {
  queued: "Queued", hashing: "Preparing", uploading: "Uploading", retrying: "Retrying",
  paused: "Paused", offline: "Waiting for network", complete: "Uploaded", failed: "Failed", cancelled: "Cancelled",
};

/** Build an element: el("li", {class: "x", dataset: {a: 1}}, child, "text"). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function toast(message) {
  const box = $("toast");
  box.textContent = message;
  box.classList.add("show");
  clearTimeout(Number(box.dataset.timer));
  box.dataset.timer = String(setTimeout(() => box.classList.remove("show"), 3500));
}

// -- sign in ------------------------------------------------------------------
function signIn(token) {
  client.setToken(token);
  if (!client.account) {
    $("signin-error").textContent = "This is not an hmacfs access token.";
    $("signin-error").hidden = false;
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("session").hidden = false;
  $("account").textContent = client.account;
  connectEvents();
  renderPending();
  refresh();
}

function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  socket?.close();
  location.reload();
}

// -- uploads ------------------------------------------------------------------
function addFiles(files) {
  const protocol = /** @type {HTMLSelectElement} */ ($("protocol")).value;
  for (const file of files) {
    const upload = client.upload(file, { protocol: /** @type {"drive" | "tus"} */ (protocol) });
    if (active.has(upload.key) && !["failed", "cancelled", "complete"].includes(active.get(upload.key).upload.state)) {
      toast(`${file.name} is already uploading`);
      continue;
    }
    const item = uploadItem(upload);
    active.set(upload.key, { upload, item });
    $("uploads").prepend(item);
    upload.start().then(
      (result) => {
        toast(`${upload.name} uploaded`);
        if (result?.id) item.dataset.fileId = result.id;
        refresh();
      },
      (error) => {
        if (error?.code !== "CANCELLED") toast(`${upload.name}: ${error.message}`);
      },
    );
  }
  renderPending();
}

function uploadItem(upload) {
  const bar = el("progress", { max: "100", value: "0", "aria-label": `Upload progress of ${upload.name}` });
  const status = el("span", { class: "status", dataset: { state: upload.state } }, STATE_TEXT[upload.state]);
  const percent = el("span", { class: "percent" }, "0 %");
  const speed = el("span", { class: "speed" }, "–");
  const eta = el("span", { class: "eta" }, "");
  const note = el("span", { class: "note" });
  const pause = el("button", { type: "button", "aria-label": `Pause ${upload.name}` }, "Pause");
  const cancel = el("button", { type: "button", class: "danger", "aria-label": `Cancel ${upload.name}` }, "Cancel");
  pause.addEventListener("click", () => (upload.state === "paused" ? upload.resume() : upload.pause()));
  cancel.addEventListener("click", () => upload.cancel());
  const item = el(
    "li",
    { class: "upload", dataset: { name: upload.name, state: upload.state } },
    el("div", { class: "upload-head" }, el("span", { class: "name", title: upload.name }, upload.name),
      el("span", { class: "size" }, bytes(upload.bytesTotal))),
    bar,
    el("div", { class: "upload-foot" },
      el("div", { class: "stats" }, status, percent, speed, eta, note),
      el("div", { class: "actions" }, pause, cancel)),
  );
  upload.addEventListener("progress", (event) => {
    const { percent: done, speed: rate, eta: left } = event.detail;
    bar.value = done;
    percent.textContent = `${Math.floor(done)} %`;
    speed.textContent = rate > 0 ? `${bytes(rate)}/s` : "–";
    eta.textContent = upload.state === "uploading" && left !== null ? `${duration(left)} left` : "";
  });
  upload.addEventListener("hashing", (event) => {
    note.textContent = `checking file ${Math.floor(event.detail.percent)} %`;
  });
  upload.addEventListener("resumed", (event) => {
    item.dataset.resumedFrom = String(event.detail.offset);
    note.textContent = `resumed at ${Math.floor(event.detail.percent)} %`;
  });
  upload.addEventListener("retry", (event) => {
    note.textContent = `retry ${event.detail.attempt} in ${duration(event.detail.delay / 1000)}`;
  });
  upload.addEventListener("state", (event) => {
    const state = event.detail.state;
    item.dataset.state = state;
    status.dataset.state = state;
    status.textContent = STATE_TEXT[state] ?? state;
    pause.textContent = state === "paused" ? "Resume" : "Pause";
    pause.setAttribute("aria-label", `${pause.textContent} ${upload.name}`);
    const over = ["complete", "failed", "cancelled"].includes(state);
    pause.disabled = over;
    cancel.disabled = over;
    if (state === "uploading" && !note.textContent.startsWith("resumed")) note.textContent = "";
    if (state === "complete") { eta.textContent = ""; markConfirmed(); }
    if (state === "failed") note.textContent = upload.error?.message ?? "failed";
  });
  return item;
}

/** Show "Saved on server" once the upload finished here and /ws announced it. */
function markConfirmed() {
  for (const { upload, item } of active.values()) {
    const taskId = upload.record()?.taskId ?? item.dataset.taskId;
    if (item.dataset.confirmed || upload.state !== "complete") continue;
    if (!confirmed.has(item.dataset.name ?? "") && !(taskId && confirmed.has(taskId))) continue;
    item.dataset.confirmed = "true";
    item.querySelector(".note")?.replaceChildren(el("span", { class: "confirmed" }, "✓ Saved on server"));
  }
}

function renderPending() {
  const records = client.pendingUploads().filter((record) => ![...active.values()].some((a) => a.upload.key === record.key));
  $("pending").hidden = records.length === 0;
  $("pending-list").replaceChildren(...records.map((record) =>
    el("li", { dataset: { name: record.name } },
      el("span", {}, el("strong", {}, record.name), ` · ${bytes(record.size)} · ${record.protocol}`),
      el("button", { type: "button", class: "ghost", onclick: () => { client.forgetPending(record.key); renderPending(); } }, "Forget"))));
}

// -- recent uploads and tasks ---------------------------------------------------
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 300);
}

async function refresh() {
  try {
    const [recent, tasks] = await Promise.all([client.recentUploads(10), client.tasks(50)]);
    renderRecent(recent);
    // /api/tasks lists uploads too (read-only FileUpload entries); they have their own list.
    renderTasks(tasks.filter((task) => !task.readOnly).slice(0, 20));
  } catch (error) {
    if (error.status === 401) { toast("Your token was refused; sign in again."); signOut(); return; }
    toast(`Could not load lists: ${error.message}`);
  }
}

function renderRecent(uploads) {
  $("recent-empty").hidden = uploads.length > 0;
  $("recent").replaceChildren(...uploads.map((task) => {
    const done = task.status === "Completed" && task.fileId;
    const action = (label, type) => el("button", {
      type: "button", "aria-label": `${label} ${task.fileName}`, onclick: () => startTask(type, task),
    }, label);
    return el("li", { class: "row", dataset: { state: task.status, name: task.fileName } },
      el("div", { class: "row-head" }, el("span", { class: "name", title: task.fileName }, task.fileName),
        el("span", { class: "status", dataset: { state: task.status } }, task.status)),
      el("progress", { max: "100", value: String(task.progress ?? 0), "aria-label": `Server progress of ${task.fileName}` }),
      el("div", { class: "row-meta" }, el("span", {}, `${bytes(task.fileSize)} · ${new Date(task.lastActivity).toLocaleString()}`),
        done ? el("div", { class: "actions" },
          el("a", { class: "button ghost", href: `/download/${task.fileId}`, download: task.fileName, "aria-label": `Download ${task.fileName}`, onclick: (e) => download(e, task) }, "Download"),
          action("Compress", "FileCompress"), action("Encrypt", "FileEncrypt"), action("Move", "FileMove")) : null));
  }));
}

function renderTasks(tasks) {
  $("tasks-empty").hidden = tasks.length > 0;
  $("tasks").replaceChildren(...tasks.map((task) => {
    const running = ["Pending", "InProgress"].includes(task.status);
    const act = (label, action) => el("button", {
      type: "button", "aria-label": `${label} ${task.name}`,
      onclick: () => client.taskAction(task.taskId, action).then(refreshSoon, (e) => toast(e.message)),
    }, label);
    const result = task.results?.resultFileId ? " · result ready" : task.errorMessage ? ` · ${task.errorMessage}` : "";
    return el("li", { class: "row", dataset: { taskId: task.taskId, state: task.status, type: task.type } },
      el("div", { class: "row-head" }, el("span", { class: "name", title: task.name }, task.name),
        el("span", { class: "status", dataset: { state: task.status } }, task.status)),
      el("progress", { max: "100", value: String(task.progress ?? 0), "aria-label": `Progress of task ${task.name}` }),
      el("div", { class: "row-meta" }, el("span", {}, `${task.type} · ${Math.round(task.progress ?? 0)} %${result}`),
        el("div", { class: "actions" },
          running ? act("Pause", "pause") : null,
          task.status === "Paused" ? act("Resume", "resume") : null,
          running || task.status === "Paused" ? act("Cancel", "cancel") : null)));
  }));
}

/** Downloads need the bearer token, which a plain link cannot send. */
async function download(event, task) {
  event.preventDefault();
  const response = await fetch(`/download/${task.fileId}`, { headers: client.headers() });
  if (!response.ok) { toast(`Download failed (${response.status})`); return; }
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: task.fileName });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function startTask(type, upload) {
  const dialog = /** @type {HTMLDialogElement} */ ($("task-dialog"));
  const verb = { FileCompress: "Compress", FileEncrypt: "Encrypt", FileMove: "Move" }[type];
  $("task-dialog-title").textContent = `${verb} file`;
  $("task-dialog-file").textContent = upload.fileName;
  $("field-password").hidden = type !== "FileEncrypt";
  $("field-pool").hidden = type !== "FileMove";
  /** @type {HTMLInputElement} */ ($("task-password")).required = type === "FileEncrypt";
  /** @type {HTMLInputElement} */ ($("task-pool")).required = type === "FileMove";
  $("task-start").textContent = verb;
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "start") return;
    const password = /** @type {HTMLInputElement} */ ($("task-password"));
    const pool = /** @type {HTMLInputElement} */ ($("task-pool"));
    const parameters = {
      FileCompress: { fileIds: [upload.fileId], compressionFormat: "zip", outputFileName: `${upload.fileName}.zip` },
      FileEncrypt: { fileId: upload.fileId, password: password.value },
      FileMove: { fileIds: [upload.fileId], targetPoolId: pool.value.trim() },
    }[type];
    password.value = "";
    try {
      await client.createTask(type, parameters, { name: `${verb} ${upload.fileName}` });
      toast(`${verb} task started`);
      refresh();
    } catch (error) {
      toast(`${verb}: ${error.message}`);
    }
  };
  dialog.showModal();
}

// -- live events ----------------------------------------------------------------
function connectEvents() {
  socket = client.events();
  const live = $("live");
  const show = (state, text) => { live.dataset.state = state; live.textContent = text; };
  socket.addEventListener("open", () => show("live", "Live"));
  socket.addEventListener("close", (event) => show(event.detail.code === 4401 ? "closed" : "connecting", event.detail.code === 4401 ? "Signed out" : "Reconnecting…"));
  socket.addEventListener("resync", refresh);
  socket.addEventListener("event", (event) => onServerEvent(event.detail));
  window.addEventListener("offline", () => show("offline", "Offline"));
}

function onServerEvent(envelope) {
  const { type, data } = envelope;
  logActivity(envelope);
  if (type === "upload.completed") {
    confirmed.add(data.taskId);
    confirmed.add(data.fileName);
    markConfirmed();
  }
  if (type.startsWith("task.") || type === "upload.completed" || type === "upload.failed") refreshSoon();
  if (type === "upload.progress") updateRecentProgress(data);
  if (type === "task.progress") {
    const row = document.querySelector(`#tasks [data-task-id="${CSS.escape(data.taskId)}"] progress`);
    if (row) /** @type {HTMLProgressElement} */ (row).value = data.progress;
  }
}

function updateRecentProgress(data) {
  const row = [...document.querySelectorAll("#recent .row")].find((r) => /** @type {HTMLElement} */ (r).dataset.name === data.fileName);
  const bar = row?.querySelector("progress");
  if (bar) bar.value = data.progress;
}

const EVENT_TEXT = {
  "upload.progress": (d) => `${d.fileName}: ${Math.floor(d.progress)} % on the server`,
  "upload.completed": (d) => `${d.fileName} stored (${bytes(d.fileSize)})`,
  "upload.failed": (d) => `${d.fileName} failed: ${d.errorMessage}`,
  "task.created": (d) => `${d.name} queued`,
  "task.progress": (d) => `${d.name}: ${Math.round(d.progress)} %`,
  "task.completed": (d) => `${d.name} finished`,
  "task.failed": (d) => `${d.name} failed: ${d.errorMessage ?? ""}`,
  "task.paused": (d) => `${d.name} paused`,
  "task.resumed": (d) => `${d.name} resumed`,
  "task.cancelled": (d) => `${d.name} cancelled`,
};

function logActivity({ type, ts, data }) {
  const text = (EVENT_TEXT[type] ?? (() => type))(data);
  const list = $("activity");
  list.prepend(el("li", { dataset: { type } }, el("time", { datetime: ts }, new Date(ts).toLocaleTimeString()),
    el("span", { class: "type" }, type), el("span", {}, text)));
  while (list.children.length > 30) list.lastElementChild?.remove();
}

// -- wiring ---------------------------------------------------------------------
function wire() {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn(/** @type {HTMLTextAreaElement} */ ($("token")).value.trim());
  });
  $("sign-out").addEventListener("click", signOut);
  $("refresh").addEventListener("click", refresh);
  const input = /** @type {HTMLInputElement} */ ($("files"));
  input.addEventListener("change", () => { addFiles([...(input.files ?? [])]); input.value = ""; });
  const zone = $("dropzone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    addFiles([...(event.dataTransfer?.files ?? [])]);
  });
  const saved = localStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
}

wire();
