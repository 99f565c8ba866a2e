// The browser client's tus path and navigator.connection in Debian's Chromium
// (playwright-core). Run by tests/e2e/test_browser_page.py: argv[2] is a JSON object
// with url, token, chromium and file (a path). Chromium's network emulation says
// "wifi" (navigator.connection.type), a tus upload of the file starts through the
// module served at /static/hmacfs/, and at half the emulation switches to
// "cellular4g" with a slower uplink: navigator.connection fires "change", the module
// drops its PATCH, re-reads GET /api/network/profile and continues from the server's
// offset. Every request is logged with its Hmacfs-Network header and offsets.
// Prints one JSON line with what it saw; exits non-zero on any failed step.
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const STEP_MS = 90_000;
const report = { consoleErrors: [], requests: [], steps: [] };

function step(name) {
  report.steps.push(name);
  process.stderr.write(`step: ${name}\n`);
}

async function emulate(cdp, connectionType, uploadThroughput) {
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 20,
    downloadThroughput: -1,
    uploadThroughput,
    connectionType,
  });
}

function watchRequests(page) {
  const url = new URL(options.url);
  const log = (entry) => report.requests.push({ at: Date.now(), ...entry });
  page.on("request", (request) => {
    const path = new URL(request.url()).pathname;
    if (!path.startsWith("/files/") && path !== "/api/network/profile") return;
    const headers = request.headers();
    log({ kind: "request", method: request.method(), path, network: headers["hmacfs-network"] ?? null,
          offset: headers["upload-offset"] ?? null }); // prettier-ignore
  });
  page.on("response", (response) => {
    const path = new URL(response.url()).pathname;
    if (new URL(response.url()).host !== url.host) return;
    if (!path.startsWith("/files/") && path !== "/api/network/profile") return;
    const headers = response.headers();
    const sent = response.request().headers()["upload-offset"] ?? null;
    log({ kind: "response", method: response.request().method(), path, status: response.status(),
          offset: headers["upload-offset"] ?? null, sentOffset: sent,
          chunkSize: headers["hmacfs-chunk-size"] ?? null }); // prettier-ignore
  });
  page.on("requestfailed", (request) => {
    const path = new URL(request.url()).pathname;
    if (!path.startsWith("/files/")) return;
    log({ kind: "failed", method: request.method(), path, offset: request.headers()["upload-offset"] ?? null });
  });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: options.chromium,
    headless: true,
    // navigator.connection.type is exposed by Chrome on Android and ChromeOS; desktop
    // builds have it behind this Blink feature (desktop shows effectiveType only).
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--enable-blink-features=NetInfoDownlinkMax"],
  });
  const page = await browser.newPage();
  page.on("pageerror", (error) => report.consoleErrors.push(String(error)));
  page.on("console", (message) => {
    const text = message.text();
    if (message.type() === "error" && !text.startsWith("Failed to load resource")) report.consoleErrors.push(text);
  });
  watchRequests(page);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await emulate(cdp, "wifi", options.wifiRate);

  step("open the page");
  await page.goto(options.url);
  report.before = await page.evaluate(() => ({ type: navigator.connection?.type ?? null }));
  await page.evaluate(() => {
    const input = document.createElement("input");
    input.type = "file";
    input.id = "tus-file";
    input.hidden = true;
    document.body.append(input);
  });
  await page.locator("#tus-file").setInputFiles(options.file);

  step("start a tus upload");
  await page.evaluate(async (token) => {
    const { HmacfsClient } = await import("/static/hmacfs/index.js");
    const client = new HmacfsClient({ token });
    const seen = (window.__seen = { events: [], serverEvents: [], connectionChanges: 0, progress: 0 });
    navigator.connection?.addEventListener("change", () => (seen.connectionChanges += 1));
    seen.pools = await client.pools();
    const socket = client.events({ types: ["upload.network_changed", "upload.completed"] });
    socket.addEventListener("event", (event) => seen.serverEvents.push(event.detail));
    await new Promise((resolve) => socket.addEventListener("open", resolve, { once: true }));
    const file = /** @type {HTMLInputElement} */ (document.getElementById("tus-file")).files[0];
    const upload = client.upload(file, { protocol: "tus" });
    for (const type of ["chunksize", "profile", "resumed", "retry", "state"]) {
      upload.addEventListener(type, (event) => {
        const detail = { ...event.detail };
        if (detail.error) detail.error = String(detail.error.code ?? detail.error);
        seen.events.push({ type, at: Date.now(), detail, chunkSize: upload.chunkSize });
      });
    }
    upload.addEventListener("progress", (event) => (seen.progress = event.detail.percent));
    window.__upload = upload;
    upload.start().then(
      (result) => (seen.result = result),
      (error) => (seen.failure = String(error.code ?? error)),
    );
  }, options.token);
  await page.waitForFunction(() => window.__seen.progress >= 50, null, { timeout: STEP_MS, polling: 100 });

  step("switch to cellular");
  report.switchedAt = Date.now();
  await emulate(cdp, "cellular4g", options.lteRate);
  await page.waitForFunction(() => window.__seen.result || window.__seen.failure, null, {
    timeout: STEP_MS * 2,
    polling: 200,
  });
  report.after = await page.evaluate(() => ({ type: navigator.connection?.type ?? null }));
  step("server events");
  await page
    .waitForFunction(() => window.__seen.serverEvents.some((e) => e.type === "upload.completed"), null, {
      timeout: STEP_MS,
    })
    .catch(() => undefined);
  Object.assign(report, await page.evaluate(() => window.__seen));
  await browser.close();
}

main().then(
  () => console.log(JSON.stringify(report)),
  (error) => {
    console.log(JSON.stringify({ ...report, error: String(error?.stack ?? error) }));
    process.exit(1);
  },
);
