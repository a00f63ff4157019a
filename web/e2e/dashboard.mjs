// The dashboard end to end, in Debian's Chromium driven by playwright-core, against the whole stack (gateway,
// provisioner, status service, local control plane with the simulated kubelet). Run by
// test-support/tests/dashboard.rs, which starts the stack and sets:
//   GATEWAY_URL, DASHBOARD_TOKEN, STORE_ID, BROKEN_STORE_ID (a store whose bootstrap the simulated kubelet fails),
//   MEDUSA_STORE_ID (a Medusa store, whose bootstrap the simulated kubelet has report a publishable key),
//   SCREENSHOTS (a directory), RESTART_REQUEST (a file path: the script writes "status" or "gateway" there when it
//   wants that service restarted, or "heal" when the broken store's cause should be fixed, and waits for the
//   harness to remove it), PASSWORD_FILE (where the script leaves the password it was shown, so the harness can check that no log
//   holds it).
// Exits non-zero with a message at the first step that fails.

import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const url = env("GATEWAY_URL");
const token = env("DASHBOARD_TOKEN");
const storeId = env("STORE_ID");
const brokenStoreId = env("BROKEN_STORE_ID");
const medusaStoreId = env("MEDUSA_STORE_ID");
const shots = env("SCREENSHOTS");
const restartRequest = env("RESTART_REQUEST");
const passwordFile = env("PASSWORD_FILE");
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
// A phone-width screen: the dashboard must be usable there.
const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
let shot = 0;
async function step(name, action) {
  const started = Date.now();
  try {
    await action();
  } catch (error) {
    await page.screenshot({ path: join(shots, `failed-${name}.png`), fullPage: true }).catch(() => {});
    throw new Error(`step "${name}" failed: ${error.message}`);
  }
  shot += 1;
  await page.screenshot({ path: join(shots, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  console.log(`ok  ${name} (${Date.now() - started} ms)`);
}
const expectVisible = (locator, timeout = 10_000) => locator.waitFor({ state: "visible", timeout });

try {
  await step("sign-in-refuses-a-wrong-token", async () => {
    await page.goto(url);
    await page.getByLabel("API token").fill("not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expectVisible(page.getByRole("alert").filter({ hasText: "not valid" }));
  });

  await step("sign-in", async () => {
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expectVisible(page.getByRole("status").filter({ hasText: "Live" }));
  });

  await step("a-bad-id-shows-the-servers-message-at-the-field", async () => {
    await page.getByLabel("Store id").fill("Bad_Id");
    await page.getByLabel("Name").fill("Bad");
    await page.getByLabel("Admin email").fill("owner@example.com");
    await page.getByRole("button", { name: "Create store" }).click();
    const error = page.locator("#store_id-error");
    await expectVisible(error);
    const text = await error.textContent();
    if (!/lowercase/.test(text ?? "")) throw new Error(`unexpected message: ${text}`);
    const invalid = await page.getByLabel("Store id").getAttribute("aria-invalid");
    if (invalid !== "true") throw new Error("the field is not marked invalid");
  });

  const card = page.getByRole("listitem", { name: `Store Browser shop` });
  const phase = card.getByTestId("phase");
  await step("create", async () => {
    await page.getByLabel("Store id").fill(storeId);
    await page.getByLabel("Name").fill("Browser shop");
    await page.getByRole("button", { name: "Create store" }).click();
    await expectVisible(card);
  });

  await step("steps-turn-to-ready-live", async () => {
    // Sample the phase and the step progress as they change, without ever reloading the page.
    const phases = new Set();
    const progress = new Set();
    const deadline = Date.now() + 180_000;
    for (;;) {
      const now = (await phase.textContent())?.trim();
      phases.add(now);
      progress.add(await card.getByRole("progressbar").getAttribute("aria-label"));
      if (now === "ready") break;
      if (now === "failed") throw new Error(`the store failed: ${await card.textContent()}`);
      if (Date.now() > deadline) throw new Error(`not ready in time; phases seen ${[...phases]}`);
      await page.waitForTimeout(50);
    }
    if (progress.size < 3) throw new Error(`step progress did not move live: ${[...progress]}`);
    console.log(`    phases seen: ${[...phases].join(" → ")}; progress seen: ${[...progress].join(" → ")}`);
    await expectVisible(card.getByRole("link", { name: "Storefront" }));
  });

  await step("show-admin-credentials", async () => {
    await card.getByRole("button", { name: "Show admin credentials" }).click();
    const password = card.getByTestId("password");
    await expectVisible(password);
    const shown = (await password.textContent()) ?? "";
    if (shown.length < 12) throw new Error("no password shown");
    writeFileSync(passwordFile, shown);
  });

  await step("backups-say-when-the-platform-has-no-object-store", async () => {
    await card.getByText("Backups", { exact: true }).click();
    await expectVisible(card.getByRole("alert").filter({ hasText: "backups are off" }));
    await expectVisible(card.getByRole("button", { name: "Back up now" }));
  });

  const askHarness = async (request) => {
    writeFileSync(restartRequest, request);
    const deadline = Date.now() + 60_000;
    while (existsSync(restartRequest)) {
      if (Date.now() > deadline) throw new Error(`the harness did not answer "${request}"`);
      await page.waitForTimeout(100);
    }
  };

  for (const service of ["status", "gateway"]) {
    await step(`the-stream-reconnects-after-the-${service}-restarts`, async () => {
      writeFileSync(restartRequest, service);
      await expectVisible(page.getByRole("status").filter({ hasText: "Reconnecting" }), 30_000);
      const deadline = Date.now() + 60_000;
      while (existsSync(restartRequest)) {
        if (Date.now() > deadline) throw new Error(`the harness did not restart the ${service} service`);
        await page.waitForTimeout(100);
      }
      await expectVisible(page.getByRole("status").filter({ hasText: "Live" }), 60_000);
      await expectVisible(phase.filter({ hasText: "ready" }));
    });
  }

  const broken = page.getByRole("listitem", { name: "Store Broken shop" });
  await step("a-failed-store-shows-its-reason-and-retry-finishes-it", async () => {
    await page.getByLabel("Store id").fill(brokenStoreId);
    await page.getByLabel("Name").fill("Broken shop");
    await page.getByLabel("Admin email").fill("owner@example.com");
    await page.getByRole("button", { name: "Create store" }).click();
    await expectVisible(broken.getByTestId("phase").filter({ hasText: "failed" }), 180_000);
    await expectVisible(broken.getByRole("alert").filter({ hasText: "database unreachable" }));
    await page.screenshot({ path: join(shots, "failed-store-with-its-reason.png"), fullPage: true });
    await askHarness("heal");
    // Keyboard only: focus Retry and press Enter.
    await broken.getByRole("button", { name: "Retry" }).focus();
    await page.keyboard.press("Enter");
    await expectVisible(broken.getByTestId("phase").filter({ hasText: "ready" }), 180_000);
  });

  const medusa = page.getByRole("listitem", { name: "Store Medusa shop" });
  await step("a-medusa-store-shows-its-own-steps-live-and-links-its-storefront-and-admin", async () => {
    await page.getByLabel("Store id").fill(medusaStoreId);
    await page.getByLabel("Name").fill("Medusa shop");
    await page.getByLabel("Engine").selectOption({ label: "Medusa" });
    await page.getByLabel("Admin email").fill("owner@example.com");
    await page.getByRole("button", { name: "Create store" }).click();
    await expectVisible(medusa);
    const steps = medusa.getByRole("list", { name: "Steps" });
    for (const name of ["postgres", "redis", "backend", "storefront"]) {
      await expectVisible(steps.getByRole("listitem").filter({ hasText: name }));
    }
    await expectVisible(medusa.getByTestId("phase").filter({ hasText: "ready" }), 180_000);
    const storefront = await medusa.getByRole("link", { name: "Storefront" }).getAttribute("href");
    const admin = await medusa.getByRole("link", { name: "Admin" }).getAttribute("href");
    if (storefront !== `http://${medusaStoreId}.localhost/`) throw new Error(`storefront link ${storefront}`);
    if (admin !== `http://${medusaStoreId}.localhost/app/`) throw new Error(`admin link ${admin}`);
    if (!(await medusa.textContent())?.includes("Medusa")) throw new Error("the card does not say Medusa");
    // The owner's short help: how a new product becomes sellable.
    await medusa.getByText("Running your shop").click();
    await expectVisible(medusa.getByText(/enter the quantity under the variant/));
  });

  await step("delete-with-confirmation", async () => {
    await card.getByRole("button", { name: "Delete" }).click();
    await card.getByRole("button", { name: "Yes, delete" }).click();
    // DELETING shows live while the namespace is torn down, then the store is gone.
    await expectVisible(card.getByTestId("phase").filter({ hasText: "deleting" }), 30_000);
    await card.waitFor({ state: "detached", timeout: 180_000 });
    await broken.getByRole("button", { name: "Delete" }).click();
    await broken.getByRole("button", { name: "Yes, delete" }).click();
    await broken.waitFor({ state: "detached", timeout: 180_000 });
    await medusa.getByRole("button", { name: "Delete" }).click();
    await medusa.getByRole("button", { name: "Yes, delete" }).click();
    await medusa.waitFor({ state: "detached", timeout: 180_000 });
  });
} catch (error) {
  console.error(error.message);
  await browser.close();
  process.exit(1);
}
await browser.close();
