// Unit tests of the I/O-free parts of the client: `node --test test/` (Node 18+).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";

import { backoffDelay, parseRetryAfter, retryableStatus } from "../src/http.js";
import { networkHint } from "../src/network.js";
import { Sha256 } from "../src/sha256.js";
import { ResumeStore, fingerprint } from "../src/store.js";
import { tokenAccount } from "../src/client.js";

test("sha256 matches node's crypto for every padding case and any split", () => {
  for (const size of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 100003]) {
    const bytes = randomBytes(size);
    const hash = new Sha256();
    for (let at = 0; at < size; ) {
      const step = 1 + ((at * 7919) % 97);
      hash.update(bytes.subarray(at, at + step));
      at += step;
    }
    assert.equal(hash.hex(), createHash("sha256").update(bytes).digest("hex"), `size ${size}`);
  }
});

test("backoff: full jitter under an exponential cap, never below Retry-After", () => {
  assert.equal(backoffDelay(1, { random: () => 0.999999 }) < 500, true);
  assert.equal(Math.round(backoffDelay(4, { random: () => 1 })), 4000);
  assert.equal(backoffDelay(30, { random: () => 1 }), 30000);
  assert.equal(backoffDelay(1, { random: () => 0, retryAfter: 7 }), 7000);
});

test("Retry-After in seconds or as a date; retryable statuses", () => {
  assert.equal(parseRetryAfter("3"), 3);
  assert.equal(parseRetryAfter(null), null);
  const later = parseRetryAfter(new Date(Date.now() + 10000).toUTCString());
  assert.ok(later !== null && later > 8 && later <= 10);
  assert.deepEqual([408, 423, 429, 500, 503, 0].map(retryableStatus), [true, true, true, true, true, true]);
  assert.deepEqual([400, 401, 403, 404, 409, 413].map(retryableStatus), [false, false, false, false, false, false]);
  assert.equal(retryableStatus(409, "CHUNK_BUSY"), true);
  assert.equal(retryableStatus(409, "UPLOAD_INCOMPLETE"), true);
  assert.equal(retryableStatus(409, "UPLOAD_COMPLETED"), false);
});

test("Hmacfs-Network comes from navigator.connection", () => {
  Object.defineProperty(globalThis, "navigator", {
    value: { connection: { type: "cellular", effectiveType: "3g", downlink: 1.45, rtt: 300 } },
    configurable: true,
  });
  assert.equal(networkHint(), "type=cellular; downlink=1.45; rtt=300");
  globalThis.navigator.connection = { effectiveType: "4g", downlink: 10, rtt: 50 };
  assert.equal(networkHint(), "type=4g; downlink=10; rtt=50");
  globalThis.navigator.connection = undefined;
  assert.equal(networkHint(), null);
});

test("resume records are keyed by server, account and the file's identity", () => {
  const file = { name: "a.bin", size: 10, lastModified: 5, type: "" };
  const key = fingerprint(/** @type {any} */ (file), "http://s", "acct");
  assert.notEqual(key, fingerprint(/** @type {any} */ ({ ...file, size: 11 }), "http://s", "acct"));
  assert.notEqual(key, fingerprint(/** @type {any} */ (file), "http://other", "acct"));
  const store = new ResumeStore(); // no localStorage in Node: the in-memory backend
  store.set(key, { taskId: "t1" });
  assert.equal(store.get(key)?.taskId, "t1");
  assert.equal(store.list()[0].key, key);
  store.remove(key);
  assert.equal(store.get(key), null);
});

test("the account is the token's sub", () => {
  const payload = Buffer.from(JSON.stringify({ sub: "8c5f0f8e-1" })).toString("base64url");
  assert.equal(tokenAccount(`x.${payload}.y`), "8c5f0f8e-1");
  assert.equal(tokenAccount("garbage"), null);
});
