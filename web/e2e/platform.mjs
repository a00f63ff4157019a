// A person at the installed platform: the dashboard the chart's gateway serves, reached at the gateway's Service from
// outside the cluster, in Debian's Chromium driven by playwright-core. Run by services/provisioner/tests/platform.rs,
// which installed the platform on the real node with deploy/install.sh and sets:
//   GATEWAY_URL       the gateway's NodePort (http://<node>:<port>)
//   DASHBOARD_TOKEN   the token the install printed
//   STORE_ID          the Medusa store this person creates
//   SCREENSHOTS       a directory
//   HARNESS_REQUEST, HARNESS_REPLY (file paths): the script asks the harness for something by writing one line into
//   HARNESS_REQUEST and waits until the harness removes the file, having written its answer, if any, into
//   HARNESS_REPLY first. The requests:
//     "meanwhile"        while the store provisions: more stores, `helm upgrade` to rebuilt images, the leading
//                        provisioner's pod deleted, the status pod deleted (this page stays open throughout);
//     "order"            a shopper buys at the store's own address and the owner finds the order in the store's
//                        admin; answers the order's id.
// Exits non-zero with a message at the first step that fails.

import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { env, expectVisible, open } from "./browser.mjs";

const url = env("GATEWAY_URL");
const token = env("DASHBOARD_TOKEN");
const storeId = env("STORE_ID");
const shots = env("SCREENSHOTS");
const harnessRequest = env("HARNESS_REQUEST");
const harnessReply = env("HARNESS_REPLY");

const { browser, page, step } = await open({ width: 1280, height: 900 }, shots);

// What the card shows, sampled without reloading the page: phases and step progress, in order of first sight.
const phasesSeen = new Set();
const progressSeen = new Set();
const card = page.getByRole("listitem", { name: `Store Platform shop (${storeId})` });
const phase = card.getByTestId("phase");
async function sample() {
  const now = (await phase.textContent({ timeout: 1_000 }).catch(() => null))?.trim();
  if (now) phasesSeen.add(now);
  const progress = await card
    .getByRole("progressbar")
    .getAttribute("aria-label", { timeout: 1_000 })
    .catch(() => null);
  if (progress) progressSeen.add(progress);
  return now;
}

// Asks the harness for `request` and returns its answer (""), sampling the card all the while.
async function askHarness(request, within) {
  rmSync(harnessReply, { force: true });
  writeFileSync(harnessRequest, request);
  const deadline = Date.now() + within;
  while (existsSync(harnessRequest)) {
    if (Date.now() > deadline) throw new Error(`the harness did not answer "${request}"`);
    await sample();
    await page.waitForTimeout(200);
  }
  return existsSync(harnessReply) ? readFileSync(harnessReply, "utf8").trim() : "";
}

try {
  await step("sign-in-with-the-token-the-install-printed", async () => {
    await page.goto(url);
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expectVisible(page.getByRole("status").filter({ hasText: "Live" }));
  });

  await step("create-a-medusa-store", async () => {
    await page.getByLabel("Store id").fill(storeId);
    await page.getByLabel("Name").fill("Platform shop");
    await page.getByLabel("Engine").selectOption({ label: "Medusa" });
    await page.getByLabel("Admin email").fill("owner@example.com");
    await page.getByRole("button", { name: "Create store" }).click();
    await expectVisible(card);
  });

  await step("the-platform-is-upgraded-and-loses-pods-while-the-store-provisions", async () => {
    await askHarness("meanwhile", 600_000);
    // The status pod was replaced: the page's stream has reconnected by itself.
    await expectVisible(page.getByRole("status").filter({ hasText: "Live" }), 120_000);
  });

  await step("steps-turn-done-live-and-the-store-is-ready", async () => {
    const deadline = Date.now() + 900_000;
    for (;;) {
      const now = await sample();
      if (now === "ready") break;
      if (now === "failed") throw new Error(`the store failed: ${await card.textContent()}`);
      if (Date.now() > deadline) throw new Error(`not ready in time; phases seen ${[...phasesSeen]}`);
      await page.waitForTimeout(200);
    }
    if (progressSeen.size < 3) throw new Error(`step progress did not move live: ${[...progressSeen]}`);
    console.log(`    phases seen: ${[...phasesSeen].join(" → ")}; progress seen: ${[...progressSeen].join(" → ")}`);
    const storefront = await card.getByRole("link", { name: "Storefront" }).getAttribute("href");
    const admin = await card.getByRole("link", { name: "Admin" }).getAttribute("href");
    if (storefront !== `http://${storeId}.localhost/`) throw new Error(`storefront link ${storefront}`);
    if (admin !== `http://${storeId}.localhost/app/`) throw new Error(`admin link ${admin}`);
  });

  await step("a-shopper-orders-and-the-owner-sees-the-order", async () => {
    const order = await askHarness("order", 600_000);
    if (!order.startsWith("order_")) throw new Error(`the harness answered "${order}"`);
    console.log(`    order: ${order}`);
  });

  await step("delete-the-store", async () => {
    await card.getByRole("button", { name: "Delete" }).click();
    await card.getByRole("button", { name: "Yes, delete" }).click();
    await expectVisible(phase.filter({ hasText: "deleting" }), 60_000);
    await card.waitFor({ state: "detached", timeout: 300_000 });
  });
} catch (error) {
  console.error(error.message);
  await browser.close();
  process.exit(1);
}
await browser.close();
