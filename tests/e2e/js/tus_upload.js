// Drives the real tus-js-client (Node) against a running hmacfs for
// tests/e2e/test_tus_js_client.py. Usage:
//   node tus_upload.js '{"endpoint": ..., "file": ..., "headers": {...}, ...}'
// Options: metadata, chunkSize, retryDelays (default: none), abortAfter (bytes: abort the upload once the
// server has acknowledged at least this many), uploadUrl (resume an upload).
// Prints one JSON line: {"url", "firstPatchOffset", "bytesAcknowledged", "aborted"}.
"use strict";

const fs = require("fs");
const tus = require("tus-js-client");

const options = JSON.parse(process.argv[2]);

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

const file = fs.readFileSync(options.file);
let firstPatchOffset = null;
let acknowledged = 0;

const upload = new tus.Upload(file, {
  endpoint: options.endpoint,
  uploadUrl: options.uploadUrl || null,
  headers: options.headers || {},
  metadata: options.metadata || {},
  chunkSize: options.chunkSize || Infinity,
  retryDelays: options.retryDelays || [],
  onBeforeRequest(req) {
    // Where the client starts sending: 0 for a new upload, the server's offset on resume.
    if (req.getMethod() === "PATCH" && firstPatchOffset === null) {
      firstPatchOffset = Number(req.getHeader("Upload-Offset"));
    }
  },
  onChunkComplete(_chunkSize, bytesAccepted) {
    acknowledged = bytesAccepted;
    if (options.abortAfter && bytesAccepted >= options.abortAfter) {
      upload.abort(false).then(() => report(true), (error) => fail(`abort failed: ${error}`));
    }
  },
  onError(error) {
    fail(`tus-js-client failed: ${error}`);
  },
  onSuccess() {
    report(false);
  },
});

function report(aborted) {
  process.stdout.write(
    `${JSON.stringify({ url: upload.url, firstPatchOffset, bytesAcknowledged: acknowledged, aborted })}\n`,
  );
}

upload.start();
