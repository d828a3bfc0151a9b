// Drives the connector's agent desktop (/agent/) in headless Debian chromium with two
// agents in two pages, as two IC WebClients would be:
//   node agent_desktop.mjs <admin base URL> <admin user> <admin password> [screenshot dir]
// A1 (2001) ready, A2 (2002) not ready; a caller with IVR data rings the support queue
// from A1's caller panel; A1 accepts, holds, unholds, consults 2002 (A2's page pops with
// the same data), A2 accepts, A1 completes the transfer (A1's card closes, A2 connected),
// A2 drops; A1 goes not ready with a reason. It fails on any console error, page
// exception or failed request, and checks that each page saw sequence numbers 1, 2, 3, ...
// without a gap. The network is closed: no sandbox, no GPU, no background traffic, and a
// fresh profile directory every run.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, adminUser, adminPassword, shots] = process.argv.slice(2);
if (!base || !adminUser || !adminPassword) {
  console.error("usage: node agent_desktop.mjs <admin URL> <admin user> <password> [screenshot dir]");
  process.exit(2);
}
const WAIT = 20000;
const IVR_ACCOUNT = "4711";

const profile = mkdtempSync(join(tmpdir(), "ici-chromium-"));
const problems = [];
let context;
let step = "start";

async function openDesk(name) {
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`${name} console: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`${name} page error: ${err.message}`));
  page.on("requestfailed", (req) => {
    // The event stream is cut when the test closes the pages; nothing else may fail.
    if (!closing) problems.push(`${name} request failed: ${req.url()} ${req.failure()?.errorText}`);
  });
  const response = await page.goto(`${base}/agent/`);
  if (!response || response.status() !== 200) throw new Error(`GET /agent/: ${response?.status()}`);
  await page.locator("#stream", { hasText: "open" }).waitFor({ timeout: WAIT });
  return page;
}

async function logIn(page, user, extension) {
  await page.fill("#login-user", user);
  await page.fill("#login-extension", extension);
  await page.click("#login-button");
  await page.locator("#agent").waitFor({ state: "visible", timeout: WAIT });
}

async function setWorkmode(page, workmode, reason) {
  await page.selectOption("#workmode", workmode);
  if (reason) await page.selectOption("#reason", reason);
  await page.click("#workmode-set");
  const badge = `#workmode-badge[data-workmode="${workmode}"][data-reason="${reason || ""}"]`;
  await page.locator(badge).waitFor({ timeout: WAIT });
}

function cards(page) {
  return page.locator("#cards .card");
}

async function card(page, state, text) {
  const locator = page.locator(`#cards .card[data-state="${state}"]`, text ? { hasText: text } : {});
  await locator.first().waitFor({ timeout: WAIT });
  return locator.first();
}

async function press(scope, label) {
  await scope.getByRole("button", { name: label, exact: true }).click();
}

async function countIs(page, n) {
  await page.waitForFunction((n) => document.querySelectorAll("#cards .card").length === n, n, { timeout: WAIT });
}

// The sequence numbers a page logged, in arrival order, must be 1, 2, 3, ... and the
// page must not have flagged a gap.
async function checkSequence(page, name) {
  const seqs = await page.$$eval("#log li[data-seq]", (lines) => lines.map((l) => Number(l.dataset.seq)).reverse());
  if (seqs.length === 0) throw new Error(`${name}: no events logged`);
  seqs.forEach((s, i) => {
    if (s !== i + 1) throw new Error(`${name}: sequence ${seqs.join(",")} is not gapless`);
  });
  const gaps = (await page.locator("#gaps").textContent()).trim();
  if (gaps !== "0 gaps") throw new Error(`${name}: gap badge says ${gaps}`);
  if ((await page.locator("#log li.gap").count()) !== 0) throw new Error(`${name}: a log line is flagged`);
  return seqs.length;
}

let closing = false;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.ICI_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 820 },
    httpCredentials: { username: adminUser, password: adminPassword },
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
  for (const page of context.pages()) await page.close();

  step = "open two desktops";
  const a1 = await openDesk("A1");
  const a2 = await openDesk("A2");
  if ((await a1.title()) !== "ici-connector agent desktop") throw new Error(`title ${await a1.title()}`);
  await a1.locator("#caller").waitFor({ state: "visible", timeout: WAIT });

  step = "log in";
  await logIn(a1, "A1", "2001");
  await logIn(a2, "A2", "2002");
  // The workmode list is getAttributes': the fixed ones and the configured custom one.
  const modes = await a1.$$eval("#workmode option", (o) => o.map((x) => x.textContent));
  if (!modes.includes("4 Lunch")) throw new Error(`workmodes offered: ${modes.join(", ")}`);
  await setWorkmode(a1, "2");
  await setWorkmode(a2, "3");

  step = "inbound queue call pops on A1 with the IVR data";
  await a1.selectOption("#caller-kind", "queue");
  await a1.fill("#caller-target", "support");
  await a1.click("#caller-call");
  let call = await card(a1, "alerting", IVR_ACCOUNT);
  const number = (await call.locator(".number").textContent()).trim();
  if (number !== "+4930123456") throw new Error(`caller shown as ${number}`);
  const callText = await call.textContent();
  for (const expected of ["sip:4930123456@example.com", "support", "IVR", "BUPA"]) {
    if (!callText.includes(expected)) throw new Error(`A1's card lacks ${expected}: ${callText}`);
  }
  const callId = await call.getAttribute("data-call-id");
  if ((await cards(a2).count()) !== 0) throw new Error("the queue call reached A2 too");

  step = "accept, hold, unhold";
  await press(call, "Accept");
  call = await card(a1, "connected");
  await press(call, "Hold");
  call = await card(a1, "held");
  await press(call, "Unhold");
  call = await card(a1, "connected");

  step = "consult A2: A2's page pops with the same data";
  await call.locator("input").fill("2002");
  await press(call, "Consult");
  await card(a1, "held");
  const consultOnA2 = await card(a2, "alerting", IVR_ACCOUNT);
  await press(consultOnA2, "Accept");
  await card(a2, "connected", IVR_ACCOUNT);
  await a1.locator(`#cards .card[data-state="connected"]`).waitFor({ timeout: WAIT });
  if (shots) {
    await a1.screenshot({ path: join(shots, "agent-desktop.png") });
    await a2.screenshot({ path: join(shots, "agent-desktop-consulted.png") });
  }

  step = "transfer: A1's cards close, A2 connected";
  const held = await card(a1, "held");
  if ((await held.getAttribute("data-call-id")) !== callId) throw new Error("the held card is not the customer's call");
  await press(held, "Transfer");
  await countIs(a1, 0);
  await countIs(a2, 1);
  const onA2 = await card(a2, "connected", IVR_ACCOUNT);

  step = "A2 drops";
  await press(onA2, "Drop");
  await countIs(a2, 0);

  step = "A1 not ready with a reason";
  await setWorkmode(a1, "3", "BRK");
  const badge = (await a1.locator("#workmode-badge").textContent()).trim();
  if (!badge.includes("Break")) throw new Error(`workmode badge says ${badge}`);

  step = "sequence numbers";
  const n1 = await checkSequence(a1, "A1");
  const n2 = await checkSequence(a2, "A2");
  if (problems.length > 0) throw new Error(problems.join("\n"));
  closing = true;
  console.log(`agent desktop OK: A1 saw events 1..${n1}, A2 1..${n2}, call ${callId}`);
} catch (e) {
  console.error(`agent desktop check failed at "${step}": ${e.message}`);
  for (const p of problems) console.error(p);
  if (context) {
    for (const [i, page] of context.pages().entries()) {
      const log = await page
        .$$eval("#log li", (l) => l.map((x) => [0, 1, 2, 3].map((i) => x.childNodes[i]?.textContent ?? "").join(" ")))
        .catch(() => []);
      console.error(`--- page ${i + 1} log (newest first):\n${log.join("\n")}`);
    }
  }
  process.exitCode = 1;
} finally {
  closing = true;
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
