// Opens the connector's status page in headless Debian chromium and checks it:
//   node status_page.mjs <admin base URL> <SAP user> <call id> [screenshot.png]
// It waits until the page (refreshing itself from /api/status) shows the agent and the
// call, checks the switch link badge, and fails on any console error or page exception.
// The network is closed: no sandbox, no GPU, no background or update traffic, and a fresh
// profile directory every run.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, user, call, screenshot] = process.argv.slice(2);
if (!base || !user || !call) {
  console.error("usage: node status_page.mjs <admin URL> <user> <call> [screenshot.png]");
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), "ici-chromium-"));
const problems = [];
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.ICI_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1000, height: 560 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()}`));

  const response = await page.goto(`${base}/status`);
  if (!response || response.status() !== 200) throw new Error(`GET /status: ${response?.status()}`);
  if ((await page.title()) !== "ici-connector status") throw new Error("unexpected title");

  const agentRow = page.locator("#agents tbody tr", { hasText: user });
  await agentRow.waitFor({ timeout: 20000 });
  await page.locator("#agents tbody tr", { hasText: call }).waitFor({ timeout: 20000 });
  const link = (await page.locator("#link").textContent())?.trim();
  if (link !== "up") throw new Error(`switch link badge says ${link}`);
  await page.locator("#subscriptions tbody tr", { hasText: "HTTP 200" }).waitFor({ timeout: 20000 });
  // One more refresh cycle must not break anything.
  await page.waitForFunction(() => document.getElementById("updated").textContent !== "never");
  if (screenshot) await page.screenshot({ path: screenshot });
  if (problems.length > 0) throw new Error(problems.join("\n"));
  console.log(`status page OK: ${user} with ${call}`);
} catch (e) {
  console.error(`status page check failed: ${e.message}`);
  for (const p of problems) console.error(p);
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
