// The entry point: a server URL and a token, JSON calls to the REST APIs,
// uploads that share one network watcher, and the /ws event stream.

import { EventSocket } from "./events.js";
import { HmacfsError, parseRetryAfter, retryableStatus } from "./http.js";
import { networkHint, watchNetwork } from "./network.js";
import { ResumeStore } from "./store.js";
import { Upload } from "./upload.js";

/** The `sub` claim (account id) of a JWT, or null when it cannot be read. */
export function tokenAccount(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "="))).sub ?? null;
  } catch {
    return null;
  }
}

export class HmacfsClient {
  /**
   * @param {{server?: string, token?: string, store?: ResumeStore}} [options]
   *   server: base URL ("" or omitted: this page's origin); token: a JWT.
   */
  constructor(options = {}) {
    const here = typeof location === "undefined" ? "http://localhost" : location.origin;
    this.server = (options.server || here).replace(/\/+$/, "");
    this.store = options.store ?? new ResumeStore();
    /** @type {Set<Upload>} */
    this.uploads = new Set();
    this.setToken(options.token ?? "");
    this._unwatch = watchNetwork((kind) => {
      for (const upload of this.uploads) upload.networkChanged(kind);
    });
  }

  /** @param {string} token */
  setToken(token) {
    this.token = token;
    this.account = token ? tokenAccount(token) : null;
  }

  /** An absolute URL on the server. @param {string} path */
  url(path) {
    return this.server + path;
  }

  /** Authorization and Hmacfs-Network headers for a request. */
  headers() {
    /** @type {Record<string, string>} */
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const hint = networkHint();
    if (hint) headers["Hmacfs-Network"] = hint;
    return headers;
  }

  /**
   * A JSON API call; rejects with HmacfsError carrying the server's code.
   * @param {string} method @param {string} path @param {any} [body] @param {AbortSignal} [signal]
   */
  async json(method, path, body, signal) {
    let response;
    try {
      response = await fetch(this.url(path), {
        method,
        headers: { ...this.headers(), ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new HmacfsError(`${method} ${path}: ${/** @type {Error} */ (error).message}`, { retryable: true });
    }
    const text = await response.text();
    const parsed = text ? safeJson(text) : null;
    if (!response.ok) {
      throw new HmacfsError(parsed?.message ?? `${method} ${path}: HTTP ${response.status}`, {
        status: response.status,
        code: parsed?.code,
        retryable: retryableStatus(response.status, parsed?.code),
        retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
        body: parsed,
      });
    }
    return parsed;
  }

  /**
   * A resumable upload of `file` (not started: call `start()`).
   * @param {File | Blob} file @param {import("../index").UploadOptions} [options]
   */
  upload(file, options) {
    const upload = new Upload(this, file, options);
    this.uploads.add(upload);
    const drop = () => {
      if (["complete", "failed", "cancelled"].includes(upload.state)) this.uploads.delete(upload);
    };
    upload.addEventListener("state", drop);
    return upload;
  }

  /** Unfinished uploads saved by earlier pages for this server and account. */
  pendingUploads() {
    return this.store.list().filter((record) => record.server === this.server && record.account === this.account);
  }

  /** Forget a saved upload (the user will not pick its file again). @param {string} key */
  forgetPending(key) {
    this.store.remove(key);
  }

  /**
   * The server's recommendation for this client and network now (`GET /api/network/profile`):
   * chunkSize, bufferSize, networkClass, source and the link estimate.
   * @param {number} [fileSize] @param {AbortSignal} [signal]
   */
  networkProfile(fileSize, signal) {
    const query = fileSize === undefined ? "" : `?fileSize=${fileSize}`;
    return this.json("GET", `/api/network/profile${query}`, undefined, signal);
  }

  /** The storage pools an upload may name as `poolId`, with what each accepts. */
  pools() {
    return this.json("GET", "/api/pools");
  }

  /** The account's most recent Drive uploads. */
  recentUploads(limit = 10) {
    return this.json("GET", `/api/files/upload/tasks/recent?limit=${limit}`);
  }

  /** Background tasks, newest activity first. */
  tasks(limit = 20) {
    return this.json("GET", `/api/tasks?limit=${limit}&sortBy=lastActivity&sortDescending=true`);
  }

  /**
   * Submit a background task (FileCompress, FileEncrypt, FileMove, ...).
   * @param {string} type @param {Record<string, any>} parameters @param {{name?: string, priority?: number}} [extra]
   */
  createTask(type, parameters, extra = {}) {
    return this.json("POST", "/api/tasks", { type, parameters, ...extra });
  }

  /** @param {string} taskId @param {"pause" | "resume" | "cancel"} action */
  taskAction(taskId, action) {
    return this.json("POST", `/api/tasks/${taskId}/${action}`);
  }

  /** Subscribe to the account's live events. @param {{types?: string[], taskIds?: string[], since?: number}} [options] */
  events(options) {
    return new EventSocket(this, options);
  }

  /** Stop watching the network (uploads in progress keep going). */
  close() {
    this._unwatch();
  }
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
