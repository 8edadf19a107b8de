// Browser test of the web playground in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core). Run by crates/tts-server/tests/playground_browser.rs against a real server:
//   node tests/web/playground.test.mjs <base-url> <screenshot.png>
// Exits 0 when every check passes; otherwise prints what failed and exits 1.
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";

const [baseUrl, screenshotPath] = process.argv.slice(2);
if (!baseUrl || !screenshotPath) {
  console.error("usage: node playground.test.mjs <base-url> <screenshot.png>");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const VOICE = process.env.PLAYGROUND_VOICE || "en_US-joe-medium";
// Several sentences: the server streams them one by one, so playback must start before the last arrives.
const TEXT = "The playground speaks this sentence first. Then it speaks a second one, while the first is playing. " +
  "The third sentence is longer still, so that the server is certainly busy with it when the first one sounds.";
const RUN_TIMEOUT_MS = 120_000;

const consoleErrors = [];
let expectedHttpError = null; // a status line Chromium logs for a deliberate bad request
const step = (message) => console.log(`[playground] ${message}`);

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/// Waits for run number `id` to finish; returns the page's record of it.
async function waitForRun(page, id) {
  await page.waitForFunction(
    (n) => window.playground && window.playground.runs >= n && window.playground.lastRun.done,
    id,
    { timeout: RUN_TIMEOUT_MS, polling: 100 },
  );
  return page.evaluate(() => {
    const { stopPlayback, ...run } = window.playground.lastRun;
    return run;
  });
}

/// Twenty presses of an arrow key on the speed slider (step 0.05), then the shown value.
async function setSpeedByKeyboard(page, key, expected) {
  await page.locator("#speed").focus();
  for (let i = 0; i < 20; i++) await page.keyboard.press(key);
  const shown = await page.locator("#speed-value").textContent();
  check(shown === expected, `speed shows ${shown}, expected ${expected}`);
}

function checkPlayed(run, label, streamed = true) {
  check(run.error === null, `${label}: the page reported an error: ${run.error}`);
  // Chromium streams both PCM (Web Audio) and MP3 (MediaSource): no whole-file fallback.
  check(!streamed || run.fallback === null, `${label}: fell back to a whole file: ${run.fallback}`);
  check(run.ttfaMs !== null && run.ttfaMs > 0, `${label}: no time to first audio was measured`);
  check(run.audioSeconds > 1, `${label}: expected more than 1 s of audio, got ${run.audioSeconds}`);
  // Audio actually played: the player's own clock advanced through (nearly) all of it.
  check(run.playedSeconds > 0.9 * run.audioSeconds,
    `${label}: played ${run.playedSeconds} s of ${run.audioSeconds} s`);
  check(run.rtf !== null && run.rtf > 0, `${label}: no RTF shown`);
}

const userDataDir = mkdtempSync(join(tmpdir(), "playground-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1100, height: 1300 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = message.text();
    // The deliberate bad request below makes Chromium log its 400; nothing else may.
    if (expectedHttpError && expectedHttpError.test(text)) return;
    consoleErrors.push(text);
  });
  page.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`));

  step(`loading ${baseUrl}/`);
  const response = await page.goto(`${baseUrl}/`, { waitUntil: "load" });
  check(response && response.status() === 200, `GET / answered ${response && response.status()}`);
  await page.waitForFunction(() => window.playground && window.playground.voicesLoaded, null, { timeout: 30_000 });
  const voices = await page.locator("#voice option").evaluateAll((options) => options.map((o) => o.value));
  check(voices.includes(VOICE), `voice picker lacks ${VOICE}: ${voices.join(", ")}`);
  check(await page.locator("#voice-table tbody tr").count() === voices.length, "voice table and picker disagree");

  // Accessible names: every control is reachable by its label.
  for (const label of ["Text", "Voice", "Format", "API key"]) {
    check(await page.getByLabel(label, { exact: true }).count() === 1, `no control labelled ${label}`);
  }
  check(await page.locator("[aria-live=polite]#status").count() === 1, "no aria-live status region");

  step("PCM: typing text and clicking Speak");
  await page.getByLabel("Text", { exact: true }).fill(TEXT);
  await page.getByLabel("Voice", { exact: true }).selectOption(VOICE);
  await page.getByLabel("Format", { exact: true }).selectOption("pcm");
  await page.getByRole("button", { name: "Speak", exact: true }).click();
  const pcm = await waitForRun(page, 1);
  step(`PCM run: ${JSON.stringify(pcm)}`);
  checkPlayed(pcm, "PCM");
  // Streaming: the first audio sounded before the server had sent the last of it.
  check(pcm.playbackStartMs !== null && pcm.playbackStartMs < pcm.totalMs,
    `PCM: playback started at ${pcm.playbackStartMs} ms, after the stream ended at ${pcm.totalMs} ms`);
  const ttfaText = await page.locator("#m-ttfa").textContent();
  check(/\d+ ms/.test(ttfaText), `time to first audio not shown: ${ttfaText}`);
  check(/\d/.test(await page.locator("#m-rtf").textContent()), "RTF not shown");
  check(await page.locator("#download").isVisible(), "no download link after the run");
  check(/Done/.test(await page.locator("#status").textContent()), "status does not say Done");
  mkdirSync(dirname(screenshotPath), { recursive: true });
  await page.screenshot({ path: screenshotPath, fullPage: true });
  step(`screenshot saved to ${screenshotPath}`);

  step("speed: the slider moves by keyboard (1 -> 2, halving the audio and the test's playing time)");
  await setSpeedByKeyboard(page, "ArrowRight", "2.00×");

  step("MP3: pressing Ctrl+Enter in the text box");
  await page.getByLabel("Format", { exact: true }).selectOption("mp3");
  await page.getByLabel("Text", { exact: true }).focus();
  await page.keyboard.press("Control+Enter");
  const mp3 = await waitForRun(page, 2);
  step(`MP3 run: ${JSON.stringify(mp3)}`);
  checkPlayed(mp3, "MP3");
  // Piper stretches phonemes, not pauses, so speed 2 shortens the audio, though not to half.
  check(mp3.audioSeconds < 0.8 * pcm.audioSeconds,
    `speed 2 gave ${mp3.audioSeconds} s of audio against ${pcm.audioSeconds} s at speed 1`);
  const duration = await page.locator("#player").evaluate((audio) => audio.duration);
  check(Number.isFinite(duration) && duration > 1, `<audio> duration is ${duration}`);

  step("WAV: tabbing from the speed slider to Speak and pressing Space");
  await page.getByLabel("Format", { exact: true }).selectOption("wav");
  await page.locator("#speed").focus();
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  check(focused === "speak", `Tab from the speed slider focused #${focused}, not Speak`);
  await page.keyboard.press("Space");
  const wav = await waitForRun(page, 3);
  step(`WAV run: ${JSON.stringify(wav)}`);
  checkPlayed(wav, "WAV", false);

  step("cache: the same PCM request again shows the server's X-Cache answer");
  await setSpeedByKeyboard(page, "ArrowLeft", "1.00×");
  await page.getByLabel("Format", { exact: true }).selectOption("pcm");
  await page.getByRole("button", { name: "Speak", exact: true }).click();
  const repeat = await waitForRun(page, 4);
  step(`repeated PCM run: ${JSON.stringify(repeat)}`);
  checkPlayed(repeat, "repeated PCM");
  const cacheText = await page.locator("#m-cache").textContent();
  if (pcm.cache === null) {
    check(cacheText === "not reported", `no X-Cache header, yet the page shows ${cacheText}`);
  } else {
    check(cacheText === repeat.cache, `the page shows ${cacheText}, the header said ${repeat.cache}`);
    check(/^hit/.test(repeat.cache), `the repeated request was not a cache hit: ${repeat.cache}`);
  }

  step("error: an unknown voice shows the server's message and marks the field");
  expectedHttpError = /status of 400/;
  await page.locator("#voice").evaluate((select) => {
    select.append(new Option("no-such-voice", "no-such-voice"));
    select.value = "no-such-voice";
  });
  await page.getByRole("button", { name: "Speak", exact: true }).click();
  const failed = await waitForRun(page, 5);
  expectedHttpError = null;
  check(failed.error !== null, "a request for an unknown voice did not fail");
  const alert = page.getByRole("alert");
  check(await alert.isVisible(), "the error is not shown");
  const alertText = await alert.textContent();
  check(/voice/i.test(alertText), `the error does not name the voice field: ${alertText}`);
  check(await page.locator("#voice").getAttribute("aria-invalid") === "true", "voice picker not marked invalid");

  step("upload: the form checks its fields, then shows the server's answer");
  await page.getByRole("button", { name: "Upload voice", exact: true }).click();
  check(/name/i.test(await page.locator("#upload-status").textContent()), "an empty upload form is not refused");
  check(await page.locator("#upload-name").getAttribute("aria-invalid") !== null, "the empty name is not marked");
  await page.getByLabel("Name", { exact: true }).fill("Not a voice");
  await page.locator("#upload-file").setInputFiles({ name: "noise.wav", mimeType: "audio/wav", buffer: Buffer.alloc(2048, 7) });
  await page.getByLabel("The speaker agreed to having their voice cloned").check();
  expectedHttpError = /status of (4\d\d|5\d\d)/;
  await page.getByRole("button", { name: "Upload voice", exact: true }).click();
  await page.waitForFunction(() => /failed|does not accept/.test(document.getElementById("upload-status").textContent),
    null, { timeout: 60_000 });
  expectedHttpError = null;
  step(`upload answer: ${await page.locator("#upload-status").textContent()}`);

  check(consoleErrors.length === 0, `console errors:\n  ${consoleErrors.join("\n  ")}`);
  step("all checks passed");
} catch (error) {
  console.error(`[playground] FAILED: ${error.message}`);
  if (consoleErrors.length) console.error(`[playground] console errors so far:\n  ${consoleErrors.join("\n  ")}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
