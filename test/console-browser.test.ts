/**
 * The console end to end in a real browser: Debian's Chromium, headless, driven by playwright-core
 * (never a downloaded browser), presenting the platform admin certificate, against a live gateway
 * and nats-server. It clicks through create tenant → rotate the CA (with its confirmation) →
 * create an onboarding package → download it once (a second download is refused, 409), and looks
 * at a tenant with live sessions and streams with consumer lag. Each step is saved as a screenshot
 * under .tmp/console-screenshots/<nats version>/ (gitignored).
 */
import { execFileSync } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { PROJECT_ROOT } from "./helpers/cli.ts";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { startHttp, type HttpFixture } from "./helpers/http-fixture.ts";
import { tempDir } from "./helpers/tmp.ts";

const CHROMIUM = "/usr/bin/chromium";
const LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let dep: Deployment;
let http: HttpFixture;
let browser: BrowserContext;
let shots: string;
let agent: NatsConnection;

test.before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/install-chromium.sh (Debian's chromium package)`);
  dep = await startDeployment({ tenants: ["acme-corp"] });
  http = await startHttp(dep, { jetstreamStatsIntervalMs: 1000 });
  // Live traffic for the tenant page: a session, a stream with messages, a consumer behind.
  agent = await dep.v3(await dep.edge("acme-corp", "agent-007", "site-a"));
  const js = jetstream(agent);
  for (let i = 0; i < 12; i++) await js.publish(`events.demo.${i % 3}`, JSON.stringify({ n: i }));
  const jsm = await jetstreamManager(agent);
  await jsm.consumers.add("events", { durable_name: "billing", ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: "events.demo.>" });
  const batch = await (await js.consumers.get("events", "billing")).fetch({ max_messages: 4, expires: 2000 });
  for await (const m of batch) m.ack();
  await agent.flush();
  shots = path.join(PROJECT_ROOT, ".tmp", "console-screenshots", agent.info?.version ?? "nats");
  await fs.rm(shots, { recursive: true, force: true });
  await fs.mkdir(shots, { recursive: true });
  const admin = await dep.admin();
  browser = await chromium.launchPersistentContext(tempDir("ntg-chromium-"), {
    executablePath: CHROMIUM,
    headless: true,
    args: LAUNCH_ARGS,
    // The gateway's certificate chains to the deployment's own root, which this fresh profile does
    // not trust; the test checks the server certificate with that root elsewhere (http-api).
    ignoreHTTPSErrors: true,
    clientCertificates: [{ origin: `https://localhost:${http.port}`, cert: Buffer.from(admin.cert), key: Buffer.from(admin.key) }],
    acceptDownloads: true,
    viewport: { width: 1280, height: 1000 },
  });
});

test.after.always(async () => {
  await browser?.close();
  await agent?.close();
  await http?.stop();
  await dep?.stop();
});

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

test.serial("create a tenant, rotate its CA, create a package and download it once — in Chromium", async (t) => {
  const base = `https://localhost:${http.port}`;
  const page = await browser.newPage();

  await page.goto(`${base}/ui/`);
  t.is(await page.locator("header .who").textContent(), "admin.platform.serviceradar");
  t.regex((await page.locator("#tenants").textContent()) ?? "", /acme-corp/);
  await shot(page, "01-tenants");

  // Create a tenant.
  await page.fill('input[name="slug"]', "umbrella");
  await page.fill('input[name="name"]', "Umbrella Corp");
  await page.selectOption('select[name="plan"]', "pro");
  await page.click('button:has-text("Create tenant")');
  await page.waitForURL(/\/ui\/tenants\/umbrella/, { timeout: 60_000 });
  t.regex((await page.locator(".flash.ok").textContent()) ?? "", /tenant umbrella created/);
  t.is(await page.locator("#plan").textContent(), "pro");
  const oldSerial = (await page.locator("#ca-serial").textContent())!.trim();
  t.regex(oldSerial, /^[0-9a-f]+$/);
  await shot(page, "02-tenant-created");

  // Rotate its CA, through the confirmation page.
  await page.click("#rotate-ca");
  await page.waitForURL(/\/ca\/rotate$/);
  t.regex((await page.locator("main").textContent()) ?? "", new RegExp(`serial ${oldSerial}`));
  await page.fill('input[name="overlap"]', "2h");
  await page.check("#confirm-rotate");
  await shot(page, "03-rotate-ca-confirmation");
  await page.click("#confirm-rotate-button");
  await page.waitForURL(/\/ui\/tenants\/umbrella\?ok=/);
  t.regex((await page.locator(".flash.ok").textContent()) ?? "", /CA rotated/);
  const newSerial = (await page.locator("#ca-serial").textContent())!.trim();
  t.not(newSerial, oldSerial);
  const previous = (await page.locator("#previous-cas").textContent()) ?? "";
  t.regex(previous, new RegExp(oldSerial));
  t.regex(previous, /overlap/);
  t.regex(previous, /admitted until/);
  await shot(page, "04-ca-rotated");

  // Create an onboarding package: its one-time link is on the next page only.
  await page.fill('input[name="component"]', "agent-042");
  await page.fill('input[name="partition"]', "site-a");
  await page.selectOption('select[name="type"]', "agent");
  await page.click("#create-package");
  const link = page.locator("#download-link");
  await link.waitFor();
  const url = (await link.getAttribute("href"))!;
  t.regex(url, new RegExp(`^https://localhost:${http.port}/api/v1/packages/[0-9a-f-]{36}/download\\?token=[A-Za-z0-9_-]{43}$`));
  await shot(page, "05-package-created");

  // Download once.
  const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
  t.is(download.suggestedFilename(), "umbrella-agent-042-site-a.tar.gz");
  const file = path.join(shots, download.suggestedFilename());
  await download.saveAs(file);
  const listing = execFileSync("tar", ["-tzf", file], { encoding: "utf8" });
  for (const entry of ["certs/component.pem", "certs/component-key.pem", "certs/ca-chain.pem", "config/config.yaml", "install.sh"]) t.regex(listing, new RegExp(entry.replace(".", "\\.")), entry);
  // The certificate in it is the new CA's: the rotation took effect.
  const cert = execFileSync("tar", ["-xzOf", file, "certs/component.pem"], { encoding: "utf8" });
  const issuer = execFileSync("openssl", ["x509", "-noout", "-issuer", "-serial"], { input: cert, encoding: "utf8" });
  t.regex(issuer, /tenant-umbrella\.ca\.serviceradar/);

  // A second download is refused.
  const again = await page.goto(url);
  t.is(again?.status(), 409);
  t.regex((await page.locator("body").textContent()) ?? "", /package_delivered/);
  await shot(page, "06-second-download-refused");

  // The tenant page now lists the delivered package and its certificate.
  await page.goto(`${base}/ui/tenants/umbrella`);
  t.regex((await page.locator("#packages").textContent()) ?? "", /delivered/);
  t.regex((await page.locator("#certificates").textContent()) ?? "", /agent-042\.site-a\.umbrella\.serviceradar/);
  await shot(page, "07-package-delivered");
  await page.close();
});

test.serial("a tenant page shows its live sessions and its streams with message counts and consumer lag", async (t) => {
  const page = await browser.newPage();
  await page.goto(`https://localhost:${http.port}/ui/tenants/acme-corp`);
  const sessions = (await page.locator("#live-sessions").textContent()) ?? "";
  t.regex(sessions, /agent-007\.site-a\.acme-corp\.serviceradar/);
  const events = page.locator("#streams tr", { hasText: "events.>" });
  const cells = await events.locator("td").allTextContents();
  t.is(cells[2], "12", "messages in the events stream");
  t.is(cells[5], "8", "consumer lag: 12 messages, 4 taken");
  t.regex((await page.locator("#streams").textContent()) ?? "", /billing/);
  await shot(page, "08-tenant-live");

  await page.goto(`https://localhost:${http.port}/ui/audit`);
  const audit = (await page.locator("#audit").textContent()) ?? "";
  for (const api of ["tenant.create", "ca.rotate", "package.create", "package.download"]) t.regex(audit, new RegExp(api.replace(".", "\\.")), api);
  await shot(page, "09-audit");
  await page.close();
});
