// HTTP for uploads: XMLHttpRequest (the only browser API with upload progress),
// errors that say whether a retry can help, and backoff with full jitter.

/** An HTTP or network failure; `retryable` says whether trying again may succeed. */
export class HmacfsError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, code?: string, retryable?: boolean, retryAfter?: number | null, body?: any}} [info]
   */
  constructor(message, info = {}) {
    super(message);
    this.name = "HmacfsError";
    this.status = info.status ?? 0;
    this.code = info.code ?? (this.status ? `HTTP_${this.status}` : "NETWORK_ERROR");
    this.retryable = info.retryable ?? false;
    this.retryAfter = info.retryAfter ?? null;
    this.body = info.body;
  }
}

// 409s that a new run resolves: a chunk or the upload is being written by another
// request, a chunk is still missing at completion (the run re-sends it), or a
// tus offset moved (the run asks for the server's offset first).
const RETRYABLE_CONFLICTS = new Set(["CHUNK_BUSY", "UPLOAD_BUSY", "UPLOAD_INCOMPLETE", "OFFSET_MISMATCH"]);

/**
 * Whether retrying may help: timeouts, lock contention, rate limits, server
 * faults, and the 409 codes above.
 * @param {number} status @param {string} [code] the server's error code
 */
export function retryableStatus(status, code) {
  if (status === 409) return RETRYABLE_CONFLICTS.has(code ?? "");
  return status === 0 || status === 408 || status === 423 || status === 429 || status >= 500;
}

/** Seconds from a Retry-After header (delta seconds or an HTTP date), or null. */
export function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, (at - Date.now()) / 1000);
}

/**
 * Delay before retry `attempt` (1-based): full jitter over an exponential ceiling,
 * never less than the server's Retry-After.
 * @param {number} attempt
 * @param {{base?: number, cap?: number, retryAfter?: number | null, random?: () => number}} [options]
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, options = {}) {
  const base = options.base ?? 500;
  const cap = options.cap ?? 30000;
  const ceiling = Math.min(cap, base * 2 ** (attempt - 1));
  const jittered = (options.random ?? Math.random)() * ceiling;
  const floor = (options.retryAfter ?? 0) * 1000;
  return Math.max(floor, jittered);
}

/** Resolve after `ms`, or reject at once when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", aborted);
      resolve(undefined);
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal?.reason);
    }
    signal?.addEventListener("abort", aborted, { once: true });
  });
}

/**
 * One request. Resolves with status, headers and parsed body for any status
 * below 400 (and errors whose code is in `acceptCodes`); rejects with HmacfsError otherwise.
 * @param {string} method
 * @param {string} url
 * @param {{headers?: Record<string, string>, body?: any, signal?: AbortSignal, onUploadProgress?: (loaded: number) => void, acceptCodes?: string[], timeout?: number}} [options]
 * @returns {Promise<{status: number, headers: (name: string) => string | null, body: any}>}
 */
export function send(method, url, options = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.timeout = options.timeout ?? 0;
    for (const [name, value] of Object.entries(options.headers ?? {})) xhr.setRequestHeader(name, value);
    if (options.onUploadProgress) {
      const report = options.onUploadProgress;
      xhr.upload.addEventListener("progress", (event) => report(event.loaded));
    }
    const abort = () => xhr.abort();
    options.signal?.addEventListener("abort", abort, { once: true });
    const finish = () => options.signal?.removeEventListener("abort", abort);
    xhr.addEventListener("load", () => {
      finish();
      const body = parseBody(xhr);
      const headers = (/** @type {string} */ name) => xhr.getResponseHeader(name);
      if (xhr.status < 400 || (body?.code && options.acceptCodes?.includes(body.code))) {
        resolve({ status: xhr.status, headers, body });
        return;
      }
      reject(
        new HmacfsError(body?.message ?? `${method} ${url}: HTTP ${xhr.status}`, {
          status: xhr.status,
          code: body?.code,
          retryable: retryableStatus(xhr.status, body?.code),
          retryAfter: parseRetryAfter(xhr.getResponseHeader("Retry-After")),
          body,
        }),
      );
    });
    const failed = (/** @type {string} */ what) => () => {
      finish();
      if (options.signal?.aborted) reject(options.signal.reason);
      else reject(new HmacfsError(`${method} ${url}: ${what}`, { retryable: true }));
    };
    xhr.addEventListener("error", failed("network error"));
    xhr.addEventListener("timeout", failed("timed out"));
    xhr.addEventListener("abort", failed("aborted"));
    if (options.signal?.aborted) {
      xhr.abort();
      return;
    }
    xhr.send(options.body ?? null);
  });
}

function parseBody(xhr) {
  const type = xhr.getResponseHeader("Content-Type") ?? "";
  if (!xhr.responseText) return null;
  if (type.includes("json")) {
    try {
      return JSON.parse(xhr.responseText);
    } catch {
      return null;
    }
  }
  return xhr.responseText;
}
