// One file's upload: states, progress with speed and ETA, pause/resume/cancel,
// retries with backoff, and waiting out offline spells and network switches.

import { HmacfsError, backoffDelay, sleep } from "./http.js";
import { isOnline } from "./network.js";
import { fingerprint } from "./store.js";
import { DriveStrategy, TusStrategy } from "./strategies.js";

/** Why an upload's requests were aborted (the AbortSignal's reason). */
class Interruption extends Error {
  /** @param {"pause" | "cancel" | "offline" | "switch"} kind */
  constructor(kind) {
    super(kind);
    this.kind = kind;
  }
}

const SPEED_WINDOW_MS = 5000;

/**
 * A resumable upload of one File. Events (CustomEvent, details in the .d.ts):
 * `state`, `progress`, `hashing`, `resumed`, `retry`, `chunksize`, `profile`, `complete`, `error`.
 */
export class Upload extends EventTarget {
  /**
   * @param {import("./client.js").HmacfsClient} client
   * @param {File | Blob} file
   * @param {import("../index").UploadOptions} [options]
   */
  constructor(client, file, options = {}) {
    super();
    this.client = client;
    this.file = file;
    this.options = { protocol: "drive", parallel: 3, maxAttempts: 10, ...options };
    this.name = options.name ?? /** @type {File} */ (file).name ?? "upload";
    this.key = `${this.options.protocol}|${fingerprint(file, client.server, client.account ?? "")}`;
    /** @type {import("../index").UploadState} */
    this.state = "queued";
    this.bytesSent = 0;
    this.bytesTotal = file.size;
    /** Bytes the server already had when this upload (re)started from a saved record. */
    this.resumedFrom = 0;
    this.result = null;
    /** @type {Error | null} */
    this.error = null;
    /** Bytes per tus PATCH now (the caller's, else the server's recommendation, else 5 MiB). */
    this.chunkSize = this.options.chunkSize ?? 5 * 1024 * 1024;
    this._switched = false;
    this._samples = /** @type {Array<[number, number]>} */ ([]);
    this._controller = new AbortController();
    this._wake = () => {};
    this._strategy = this.options.protocol === "tus" ? new TusStrategy(this) : new DriveStrategy(this);
    /** Settles when the upload completes (with the file), fails or is cancelled (rejects). */
    this.done = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.done.catch(() => undefined); // listeners may use events only
  }

  /** Start (or restart after a reload, from the saved record). Returns `done`. */
  start() {
    if (this.state === "queued") this._run();
    return this.done;
  }

  /** Stop sending; in-flight requests are aborted. Safe to call twice. */
  pause() {
    if (this._finished() || this.state === "paused") return;
    this._interrupt("pause");
    this.setState("paused");
  }

  /** Continue a paused upload from the server's state. */
  resume() {
    if (this.state !== "paused") return;
    this.setState("uploading");
    this._wake();
  }

  /** Abort and delete the upload on the server. */
  async cancel() {
    if (this._finished()) return;
    this._interrupt("cancel");
    this.setState("cancelled");
    await this._strategy.cancel();
    this.forget();
    this._reject?.(new HmacfsError("upload cancelled", { code: "CANCELLED" }));
    this._wake();
  }

  /** The network went away, came back, or switched (called by the client). */
  networkChanged(kind) {
    if (this._finished() || this.state === "paused") return;
    if (kind === "offline") {
      this._interrupt("offline");
      this.setState("offline");
    } else if (kind === "online") {
      this._wake();
    } else if (this.state === "uploading") {
      // A new network: connections of the old one may hang for minutes; drop them now,
      // and let the strategy ask the server what suits the new one.
      this._switched = true;
      this._interrupt("switch");
    }
  }

  async _run() {
    let attempt = 0;
    let lastFailureAt = -1;
    this.setState("uploading");
    while (!this._finished()) {
      if (this.state === "paused" || !isOnline()) {
        if (this.state !== "paused") this.setState("offline");
        await new Promise((resolve) => (this._wake = resolve));
        if (this._finished() || this.state === "paused") continue;
        if (this.state === "offline" && !isOnline()) continue;
        this.setState("uploading");
      }
      this._controller = new AbortController();
      try {
        const result = await this._strategy.run(this._controller.signal);
        this._complete(result);
        return;
      } catch (error) {
        if (error instanceof Interruption) continue;
        if (this._finished()) return;
        if (this.bytesSent > lastFailureAt) attempt = 0; // progress since the last failure: a new streak
        lastFailureAt = this.bytesSent;
        attempt += 1;
        if (!(error instanceof HmacfsError && error.retryable) || attempt > this.options.maxAttempts) {
          this._fail(/** @type {Error} */ (error));
          return;
        }
        const delay = backoffDelay(attempt, { retryAfter: error.retryAfter });
        this.emit("retry", { attempt, delay, error });
        this.setState("retrying");
        try {
          await sleep(delay, this._controller.signal);
        } catch {
          /* interrupted while waiting: the loop looks at the new state */
        }
        if (this.state === "retrying") this.setState("uploading");
      }
    }
  }

  _interrupt(kind) {
    this._controller.abort(new Interruption(kind));
  }

  _finished() {
    return ["complete", "failed", "cancelled"].includes(this.state);
  }

  _complete(result) {
    this.result = result;
    this.progress(this.bytesTotal);
    this.forget();
    this.setState("complete");
    this.emit("complete", { result });
    this._resolve?.(result);
  }

  _fail(error) {
    this.error = error;
    this.setState("failed");
    this.emit("error", { error });
    this._reject?.(error);
  }

  // -- used by the strategies ---------------------------------------------------

  /** @param {import("../index").UploadState} state */
  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", { state });
  }

  /** @param {string} type @param {Record<string, any>} detail */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Whether the network switched since the last call (then the strategy re-reads the profile). */
  takeNetworkSwitch() {
    const switched = this._switched;
    this._switched = false;
    return switched;
  }

  /** Report bytes the server has (or is receiving). */
  progress(bytes) {
    const now = performance.now();
    this.bytesSent = Math.min(bytes, this.bytesTotal);
    this._samples.push([now, this.bytesSent]);
    while (this._samples.length > 2 && now - this._samples[0][0] > SPEED_WINDOW_MS) this._samples.shift();
    const [since, from] = this._samples[0];
    const seconds = (now - since) / 1000;
    const speed = seconds > 0.2 ? Math.max(0, (this.bytesSent - from) / seconds) : 0;
    const left = this.bytesTotal - this.bytesSent;
    this.emit("progress", {
      bytesSent: this.bytesSent,
      bytesTotal: this.bytesTotal,
      percent: this.bytesTotal ? (100 * this.bytesSent) / this.bytesTotal : 100,
      speed,
      eta: speed > 0 ? left / speed : null,
    });
  }

  /** The server already had `bytes` of this file from an earlier page or attempt. */
  noteResumed(bytes) {
    if (this.resumedFrom) return;
    this.resumedFrom = bytes;
    this.emit("resumed", { offset: bytes, percent: this.bytesTotal ? (100 * bytes) / this.bytesTotal : 0 });
  }

  /** The saved record of this file's upload on this server, if any. */
  record() {
    return this.client.store.get(this.key);
  }

  /** Save where this upload lives on the server, for a later page. */
  remember(fields) {
    this.client.store.set(this.key, {
      ...fields,
      protocol: this.options.protocol,
      name: this.name,
      size: this.bytesTotal,
      server: this.client.server,
      account: this.client.account,
    });
  }

  forget() {
    this.client.store.remove(this.key);
  }
}
