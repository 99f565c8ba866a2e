// Drives Debian's Chromium through the hmacfs web page with playwright-core.
// Run by tests/e2e/test_browser_page.py: argv[2] is a JSON object with
// url, token, chromium, files (three paths), big (a path), shots (a directory).
// Prints one JSON line with what it saw; exits non-zero on any failed step.
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const STEP_MS = 60_000;
const report = { consoleErrors: [], steps: [] };

function step(name) {
  report.steps.push(name);
  process.stderr.write(`step: ${name}\n`);
}

async function signIn(page) {
  await page.goto(options.url);
  if (await page.locator("#signin").isVisible()) {
    await page.getByLabel("Access token").fill(options.token);
    await page.getByRole("button", { name: "Sign in" }).click();
  }
  await page.locator('#live[data-state="live"]').waitFor({ timeout: STEP_MS });
}

function uploadItem(page, name) {
  return page.locator(`#uploads li[data-name="${name}"]`);
}

async function waitComplete(page, name) {
  const item = uploadItem(page, name);
  await item.locator("xpath=self::*[@data-state='complete']").waitFor({ timeout: STEP_MS });
  const value = await item.locator("progress").evaluate((bar) => bar.value);
  if (value !== 100) throw new Error(`${name}: progress ended at ${value}`);
  // The /ws upload.completed event marks the item as confirmed by the server.
  await item.locator("xpath=self::*[@data-confirmed='true']").waitFor({ timeout: STEP_MS });
  await item.getByText("Saved on server").waitFor({ timeout: STEP_MS });
}

async function throttle(page, bytesPerSecond, cdp = null) {
  const session = cdp ?? (await page.context().newCDPSession(page));
  await session.send("Network.enable");
  await session.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: bytesPerSecond,
  });
  return session;
}

function progressOf(page, name) {
  return uploadItem(page, name).locator("progress").evaluate((bar) => bar.value);
}

async function progressPast(page, name, percent) {
  await page.waitForFunction(
    ([name, percent]) => {
      const bar = document.querySelector(`#uploads li[data-name="${name}"] progress`);
      return bar && bar.value > percent;
    },
    [name, percent],
    { timeout: STEP_MS, polling: 100 },
  );
}

async function waitState(page, name, state) {
  await uploadItem(page, name).locator(`xpath=self::*[@data-state='${state}']`).waitFor({ timeout: STEP_MS });
}

/** Offline and back, pause and resume, then cancel: all on one throttled upload. */
async function controls(page, path) {
  const name = path.split("/").pop();
  const cdp = await throttle(page, options.throttle / 2);
  await page.locator("#files").setInputFiles([path]);
  await progressPast(page, name, 3);
  await page.context().setOffline(true); // the browser fires "offline"
  await waitState(page, name, "offline");
  const offlineAt = await progressOf(page, name);
  await page.context().setOffline(false);
  await throttle(page, options.throttle / 2, cdp);
  await progressPast(page, name, offlineAt + 3);
  report.offlineResumed = true;
  await page.getByRole("button", { name: `Pause ${name}` }).click();
  await waitState(page, name, "paused");
  const pausedAt = await progressOf(page, name);
  await page.waitForTimeout(1500);
  report.movedWhilePaused = (await progressOf(page, name)) - pausedAt;
  await page.getByRole("button", { name: `Resume ${name}` }).click();
  await progressPast(page, name, pausedAt + 3);
  await page.getByRole("button", { name: `Cancel ${name}` }).click();
  await waitState(page, name, "cancelled");
  report.cancelledAt = await progressOf(page, name);
  await cdp.detach();
}

async function main() {
  const browser = await chromium.launch({
    executablePath: options.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // Chromium logs every HTTP error answer ("Failed to load resource: ... 409"), also
  // the ones the client handles (CHUNK_EXISTS, CHUNK_BUSY after a reload): counted
  // apart. Script errors and CSP violations ("Refused to ...") stay errors.
  report.httpErrors = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = message.text();
    (text.startsWith("Failed to load resource: the server responded") ? report.httpErrors : report.consoleErrors).push(text);
  });
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) => {
      console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  page.on("pageerror", (error) => report.consoleErrors.push(String(error)));

  step("sign in");
  await signIn(page);

  step("three files");
  await page.locator("#files").setInputFiles(options.files);
  const names = options.files.map((path) => path.split("/").pop());
  for (const name of names) await waitComplete(page, name);
  report.threeDone = true;

  step("offline, pause, resume, cancel");
  await controls(page, options.cancelled);

  step("reload mid-upload");
  const bigName = options.big.split("/").pop();
  let cdp = await throttle(page, options.throttle);
  await page.locator("#files").setInputFiles([options.big]);
  const big = uploadItem(page, bigName);
  await page.waitForFunction(
    (name) => {
      const bar = document.querySelector(`#uploads li[data-name="${name}"] progress`);
      return bar && bar.value >= 20;
    },
    bigName,
    { timeout: STEP_MS, polling: 100 },
  );
  report.percentBeforeReload = await big.locator("progress").evaluate((bar) => bar.value);
  await cdp.detach();
  await page.reload();
  await page.locator('#live[data-state="live"]').waitFor({ timeout: STEP_MS });
  await page.locator(`#pending li[data-name="${bigName}"]`).waitFor({ timeout: STEP_MS });
  cdp = await throttle(page, options.throttle * 4);
  await page.locator("#files").setInputFiles([options.big]);
  await uploadItem(page, bigName).locator("xpath=self::*[@data-resumed-from]").waitFor({ timeout: STEP_MS });
  report.resumedFrom = Number(await uploadItem(page, bigName).getAttribute("data-resumed-from"));
  await waitComplete(page, bigName);
  await cdp.detach();

  step("compress task");
  const target = names[0];
  const row = page.locator(`#recent li[data-name="${target}"][data-state="Completed"]`);
  await row.waitFor({ timeout: STEP_MS });
  await row.getByRole("button", { name: `Compress ${target}` }).click();
  await page.locator("#task-dialog").getByRole("button", { name: "Compress" }).click();
  const task = page.locator('#tasks li[data-type="FileCompress"][data-state="Completed"]');
  await task.waitFor({ timeout: STEP_MS });
  report.taskId = await task.getAttribute("data-task-id");
  await page.locator('#activity li[data-type="task.completed"]').first().waitFor({ timeout: STEP_MS });

  step("screenshots");
  await page.locator(".toast.show").waitFor({ state: "detached", timeout: STEP_MS }).catch(() => undefined);
  await page.locator(".toast:not(.show)").waitFor({ timeout: STEP_MS });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${options.shots}/desktop.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${options.shots}/phone.png`, fullPage: true });
  report.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);

  step("keyboard");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.evaluate(() => document.activeElement?.blur());
  await page.keyboard.press("Tab"); // the skip link
  await page.keyboard.press("Tab");
  report.secondFocus = await page.evaluate(() => document.activeElement?.id || document.activeElement?.textContent);
  report.unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("button, input, select, textarea, progress")]
      .filter((node) => !node.closest("[hidden]"))
      .filter((node) => {
        const labelled = node.getAttribute("aria-label") || node.labels?.length || node.textContent.trim();
        return !labelled && node.type !== "hidden";
      })
      .map((node) => node.outerHTML.slice(0, 80)),
  );
  await browser.close();
}

main().then(
  () => console.log(JSON.stringify(report)),
  (error) => {
    console.log(JSON.stringify({ ...report, error: String(error?.stack ?? error) }));
    process.exit(1);
  },
);
