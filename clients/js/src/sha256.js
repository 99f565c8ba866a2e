// Incremental SHA-256 (FIPS 180-4) in plain JavaScript.
// WebCrypto's digest() needs the whole input at once and exists only in secure
// contexts; this one hashes a file of any size block by block, anywhere.

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** An incremental SHA-256: `new Sha256().update(bytes).update(more).hex()`. */
export class Sha256 {
  constructor() {
    this._h = new Int32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    this._w = new Int32Array(64);
    this._block = new Uint8Array(64);
    this._filled = 0;
    this._length = 0; // bytes hashed so far
  }

  /** Add bytes; returns this. @param {Uint8Array} bytes */
  update(bytes) {
    let at = 0;
    this._length += bytes.length;
    if (this._filled) {
      const take = Math.min(64 - this._filled, bytes.length);
      this._block.set(bytes.subarray(0, take), this._filled);
      this._filled += take;
      at = take;
      if (this._filled < 64) return this;
      this._compress(this._block, 0);
      this._filled = 0;
    }
    for (; at + 64 <= bytes.length; at += 64) this._compress(bytes, at);
    if (at < bytes.length) {
      this._block.set(bytes.subarray(at));
      this._filled = bytes.length - at;
    }
    return this;
  }

  /** The digest as 64 lowercase hex digits; the hash takes no more input afterwards. */
  hex() {
    const bits = this._length * 8;
    const tail = new Uint8Array(((this._filled + 9 + 63) >> 6) * 64 - this._filled);
    tail[0] = 0x80;
    const view = new DataView(tail.buffer);
    view.setUint32(tail.length - 8, Math.floor(bits / 0x100000000));
    view.setUint32(tail.length - 4, bits >>> 0);
    this.update(tail);
    return Array.from(this._h, (word) => (word >>> 0).toString(16).padStart(8, "0")).join("");
  }

  _compress(bytes, at) {
    const w = this._w;
    const h = this._h;
    for (let i = 0; i < 16; i++, at += 4) {
      w[i] = (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
    }
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15];
      const b = w[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (let i = 0; i < 64; i++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (k + s1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0;
    h[1] = (h[1] + b) | 0;
    h[2] = (h[2] + c) | 0;
    h[3] = (h[3] + d) | 0;
    h[4] = (h[4] + e) | 0;
    h[5] = (h[5] + f) | 0;
    h[6] = (h[6] + g) | 0;
    h[7] = (h[7] + k) | 0;
  }
}

/**
 * SHA-256 of a Blob, read in blocks so memory stays bounded.
 * @param {Blob} blob
 * @param {{signal?: AbortSignal, onProgress?: (done: number, total: number) => void}} [options]
 * @returns {Promise<string>} 64 hex digits
 */
export async function sha256OfBlob(blob, options = {}) {
  const hash = new Sha256();
  const block = 4 * 1024 * 1024;
  for (let at = 0; at < blob.size; at += block) {
    if (options.signal?.aborted) throw options.signal.reason ?? new DOMException("aborted", "AbortError");
    hash.update(new Uint8Array(await blob.slice(at, at + block).arrayBuffer()));
    options.onProgress?.(Math.min(at + block, blob.size), blob.size);
  }
  return hash.hex();
}
