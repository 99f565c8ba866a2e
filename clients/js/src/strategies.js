// The two upload protocols behind `Upload`: the Drive upload-task API (parallel
// chunks) and tus 1.0 (one offset). Each `run` finds where the server is, sends
// what is missing, and returns the finished file; it may be called again after
// any failure and always continues from the server's state, never from zero.

import { HmacfsError, send } from "./http.js";
import { sha256OfBlob } from "./sha256.js";

const DRIVE = "/api/files/upload";
const TUS = "/files/";
const CHUNK_SIZE_HEADER = "Hmacfs-Chunk-Size";

/** Base64 of a UTF-8 string (tus metadata values). */
function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Drive API: create (with the file's SHA-256), parallel chunks, complete. */
export class DriveStrategy {
  /** @param {import("./upload.js").Upload} upload */
  constructor(upload) {
    this.upload = upload;
  }

  async run(signal) {
    const up = this.upload;
    let record = up.record();
    if (record?.taskId) {
      const state = await this._state(record.taskId, signal);
      if (state) return this._finish(record.taskId, state, signal);
      up.forget();
    }
    const created = await this._create(signal);
    if (created.fileExists) return created.file;
    up.remember({ taskId: created.taskId });
    const state = await this._state(created.taskId, signal);
    if (!state) throw new HmacfsError("the new upload vanished", { code: "UPLOAD_VANISHED" });
    return this._finish(created.taskId, state, signal);
  }

  async _create(signal) {
    const up = this.upload;
    up.setState("hashing");
    const hash = await sha256OfBlob(up.file, {
      signal,
      onProgress: (done, total) => up.emit("hashing", { percent: total ? (100 * done) / total : 100 }),
    });
    up.setState("uploading");
    const body = {
      fileName: up.name,
      fileSize: up.file.size,
      contentType: up.file.type || "application/octet-stream",
      hash,
      ...(up.options.chunkSize ? { chunkSize: up.options.chunkSize } : {}),
      ...(up.options.poolId ? { poolId: up.options.poolId } : {}),
    };
    return up.client.json("POST", `${DRIVE}/create`, body, signal);
  }

  /** The server's view of a task, or null when it is gone (expired, cancelled, unknown). */
  async _state(taskId, signal) {
    try {
      const state = await this.upload.client.json("GET", `${DRIVE}/resume/${taskId}`, undefined, signal);
      return ["Cancelled", "Expired", "Failed"].includes(state.status) ? null : state;
    } catch (error) {
      if (error instanceof HmacfsError && error.status === 404) return null;
      throw error;
    }
  }

  async _finish(taskId, state, signal) {
    const up = this.upload;
    const size = up.file.size;
    const chunk = state.chunkSize;
    const length = (/** @type {number} */ index) => Math.min(chunk, size - index * chunk);
    let confirmed = state.uploadedChunks.reduce((sum, index) => sum + length(index), 0);
    if (confirmed > 0) up.noteResumed(confirmed);
    /** @type {Map<number, number>} */
    const inflight = new Map();
    const report = () => up.progress(confirmed + [...inflight.values()].reduce((a, b) => a + b, 0));
    report();
    const queue = [...state.missingChunks];
    const inner = new AbortController();
    const stop = () => inner.abort(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    const worker = async () => {
      while (queue.length) {
        const index = /** @type {number} */ (queue.shift());
        await this._chunk(taskId, index, chunk, inner.signal, (loaded) => {
          inflight.set(index, loaded);
          report();
        });
        inflight.delete(index);
        confirmed += length(index);
        report();
      }
    };
    const workers = Math.max(1, Math.min(up.options.parallel ?? 3, queue.length || 1));
    try {
      await Promise.all(
        Array.from({ length: workers }, () =>
          worker().catch((error) => {
            inner.abort(error);
            throw error;
          }),
        ),
      );
    } finally {
      signal.removeEventListener("abort", stop);
    }
    return up.client.json("POST", `${DRIVE}/complete/${taskId}`, undefined, signal);
  }

  async _chunk(taskId, index, chunk, signal, onUploadProgress) {
    const up = this.upload;
    const body = up.file.slice(index * chunk, Math.min((index + 1) * chunk, up.file.size));
    await send("POST", up.client.url(`${DRIVE}/chunk/${taskId}/${index}`), {
      headers: { ...up.client.headers(), "Content-Type": "application/octet-stream" },
      body,
      signal,
      onUploadProgress,
      acceptCodes: ["CHUNK_EXISTS"], // an earlier attempt stored it; nothing to redo
    });
  }

  async cancel() {
    const taskId = this.upload.record()?.taskId;
    if (taskId) await this.upload.client.json("DELETE", `${DRIVE}/task/${taskId}`).catch(() => undefined);
  }
}

/**
 * tus 1.0: create, then PATCH from the server's offset. PATCH sizes are free in
 * tus: each one is `options.chunkSize` if the caller chose one, else the server's
 * recommendation: the `Hmacfs-Chunk-Size` of the creation answer or of the HEAD
 * that finds the offset, and after a network switch `GET /api/network/profile`
 * (the recommendation for the new network, which the requests now name in
 * `Hmacfs-Network`).
 */
export class TusStrategy {
  /** @param {import("./upload.js").Upload} upload */
  constructor(upload) {
    this.upload = upload;
    /** The answer that named the stored file (hmacfs's Hmacfs-File-Id), once complete. */
    this.file = null;
  }

  async run(signal) {
    const up = this.upload;
    up.setState("uploading");
    let location = up.record()?.location;
    let offset = location ? await this._offset(location, signal) : null;
    if (offset === null) {
      location = await this._create(signal);
      up.remember({ location });
      offset = 0;
    } else if (offset > 0) {
      up.noteResumed(offset);
    }
    if (up.takeNetworkSwitch()) await this._followProfile(signal);
    while (offset < up.file.size) {
      const start = offset;
      const chunk = up.chunkSize;
      const answer = await send("PATCH", location, {
        headers: {
          ...this._headers(),
          "Upload-Offset": String(start),
          "Content-Type": "application/offset+octet-stream",
        },
        body: up.file.slice(start, start + chunk),
        signal,
        onUploadProgress: (loaded) => up.progress(start + loaded),
      });
      offset = Number(answer.headers("Upload-Offset"));
      up.progress(offset);
      // hmacfs names the stored file on the answer that completes the upload.
      if (answer.headers("Hmacfs-File-Id")) this.file = answer;
    }
    const stored = this.file;
    return {
      url: location,
      size: up.file.size,
      name: up.name,
      fileId: stored?.headers("Hmacfs-File-Id") ?? null,
      fileUrl: stored?.headers("Hmacfs-File-Url") ?? null,
    };
  }

  _headers() {
    return { ...this.upload.client.headers(), "Tus-Resumable": "1.0.0" };
  }

  async _create(signal) {
    const up = this.upload;
    const metadata = [
      `filename ${base64(up.name)}`,
      `filetype ${base64(up.file.type || "application/octet-stream")}`,
    ].join(",");
    const answer = await send("POST", up.client.url(TUS), {
      headers: { ...this._headers(), "Upload-Length": String(up.file.size), "Upload-Metadata": metadata },
      signal,
    });
    const location = answer.headers("Location");
    if (!location) throw new HmacfsError("tus creation answered without Location", { code: "NO_LOCATION" });
    this._follow(answer.headers(CHUNK_SIZE_HEADER), "create");
    if (answer.headers("Hmacfs-File-Id")) this.file = answer;
    return new URL(location, up.client.url(TUS)).href;
  }

  /** Take the server's recommended PATCH size (a header value or a number), unless the caller chose one. */
  _follow(size, source) {
    const up = this.upload;
    const bytes = Number(size);
    if (up.options.chunkSize || !Number.isInteger(bytes) || bytes <= 0) return;
    up.chunkSize = bytes;
    up.emit("chunksize", { size: bytes, source });
  }

  /** After a network switch: the server's recommendation for the new network (best effort). */
  async _followProfile(signal) {
    try {
      const profile = await this.upload.client.networkProfile(this.upload.file.size, signal);
      this.upload.emit("profile", { profile });
      this._follow(profile.chunkSize, "profile");
    } catch (error) {
      if (signal.aborted) throw error; // an older server without the endpoint: keep the size
    }
  }

  /** The server's offset, or null when the upload is gone. */
  async _offset(location, signal) {
    try {
      const answer = await send("HEAD", location, { headers: this._headers(), signal });
      this._follow(answer.headers(CHUNK_SIZE_HEADER), "head");
      if (answer.headers("Hmacfs-File-Id")) this.file = answer;
      return Number(answer.headers("Upload-Offset"));
    } catch (error) {
      if (error instanceof HmacfsError && [404, 410, 403].includes(error.status)) return null;
      throw error;
    }
  }

  async cancel() {
    const location = this.upload.record()?.location;
    if (location) await send("DELETE", location, { headers: this._headers() }).catch(() => undefined);
  }
}
