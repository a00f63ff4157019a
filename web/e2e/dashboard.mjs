// The dashboard end to end, in Debian's Chromium driven by playwright-core, against the whole stack (gateway,
// provisioner with backups on, status service, local control plane with the simulated kubelet, moto's S3 server as
// the object store). Run by test-support/tests/dashboard.rs, which starts the stack and sets:
//   GATEWAY_URL, DASHBOARD_TOKEN, STORE_ID, BROKEN_STORE_ID (a store whose bootstrap the simulated kubelet fails),
//   MEDUSA_STORE_ID (a Medusa store, whose bootstrap the simulated kubelet has report a publishable key),
//   CLONE_STORE_ID (the id the script gives the clone of STORE_ID's backup), SCREENSHOTS (a directory),
//   PASSWORD_FILE (where the script leaves the password it was shown, so the harness can check that no log holds it),
//   RESTART_REQUEST and HARNESS_REPLY (file paths): the script asks the harness for something by writing one line
//   into RESTART_REQUEST and waits until the harness removes the file, having written its answer, if any, into
//   HARNESS_REPLY first. The requests:
//     "status" or "gateway"           restart that service (the script watches its connection badge meanwhile);
//     "heal"                          fix the cause of the broken store's failure;
//     "snapshot <store id>"           do what the restic container of the store's on-demand backup Job would have
//                                     done (the simulated kubelet runs no container): run the platform's backup
//                                     script with Debian's restic, the store's Secret `store-backup` and the Job's
//                                     environment, writing a real snapshot into the store's repository; answers
//                                     "id=<snapshot id> bytes=<its size> time=<its time, ms since the epoch>";
//     "newer-version"                 restart the provisioner offering NEWER_VERSION as its default WooCommerce
//                                     version (the stores run the one before);
//     "provisioner-without-backups"   restart the provisioner with no object store.
// Exits non-zero with a message at the first step that fails.

import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { env, expectVisible, open } from "./browser.mjs";

const url = env("GATEWAY_URL");
const token = env("DASHBOARD_TOKEN");
const storeId = env("STORE_ID");
const brokenStoreId = env("BROKEN_STORE_ID");
const medusaStoreId = env("MEDUSA_STORE_ID");
const cloneStoreId = env("CLONE_STORE_ID");
const shots = env("SCREENSHOTS");
const restartRequest = env("RESTART_REQUEST");
const harnessReply = env("HARNESS_REPLY");
const passwordFile = env("PASSWORD_FILE");
const newerVersion = env("NEWER_VERSION");

// A phone-width screen: the dashboard must be usable there.
const { browser, page, step } = await open({ width: 390, height: 844 }, shots);
// A store card's step.
const stepNamed = (store, name) =>
  store.getByRole("list", { name: "Steps" }).getByRole("listitem").filter({ hasText: name });

// Asks the harness for `request` (see the top of this file) and returns its answer ("" if none).
async function askHarness(request) {
  rmSync(harnessReply, { force: true });
  writeFileSync(restartRequest, request);
  const deadline = Date.now() + 120_000;
  while (existsSync(restartRequest)) {
    if (Date.now() > deadline) throw new Error(`the harness did not answer "${request}"`);
    await page.waitForTimeout(100);
  }
  return existsSync(harnessReply) ? readFileSync(harnessReply, "utf8").trim() : "";
}

// Sizes as the dashboard writes them (App.tsx's size()): 4.1 kB.
function size(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let scaled = bytes / 1000;
  let unit = 0;
  while (scaled >= 1000 && unit < units.length - 1) {
    scaled /= 1000;
    unit += 1;
  }
  return `${scaled.toFixed(1)} ${units[unit]}`;
}

// Times and dates as the browser shows them (its locale and time zone).
const localTime = (ms) => page.evaluate((t) => new Date(t).toLocaleString(), ms);
const localDate = (ms) => page.evaluate((t) => new Date(t).toLocaleDateString(), ms);

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

  // A store's card is named by its name and id: two stores may share a name.
  const card = page.getByRole("listitem", { name: `Store Browser shop (${storeId})` });
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

  // The store's backups: its Backups panel lists the repository's snapshots and its running or failed backups.
  const backups = card.getByRole("list", { name: "Backups" });
  const onDemand = backups.getByRole("listitem").filter({ hasText: "on demand · done" });
  let snapshot; // { id, bytes, time }, as the harness wrote and read it back from the object store
  let snapshotTime; // its time, as the browser shows it
  await step("back-up-now-lists-the-backup-with-its-time-size-kind-and-state", async () => {
    await card.getByText("Backups", { exact: true }).click();
    await expectVisible(card.getByText("No backups yet."), 30_000);
    await card.getByRole("button", { name: "Back up now" }).click();
    // The backup Job is there now; the simulated kubelet runs none of its containers, so the harness does what its
    // restic container would: a real snapshot in the store's repository.
    const reply = await askHarness(`snapshot ${storeId}`);
    snapshot = Object.fromEntries(reply.split(" ").map((pair) => pair.split("=")));
    if (!/^[0-9a-f]{64}$/.test(snapshot.id ?? "")) throw new Error(`the harness answered "${reply}"`);
    snapshotTime = await localTime(Number(snapshot.time));
    const expected = `${snapshotTime} · on demand · done · ${size(Number(snapshot.bytes))}`;
    // Listed once its Job has finished (a running Job is listed as running until then).
    const deadline = Date.now() + 60_000;
    for (;;) {
      await card.getByRole("button", { name: "Refresh" }).click();
      await page.waitForTimeout(500);
      const listed = (await backups.getByRole("listitem").allTextContents()).map((text) => text.trim());
      if (listed.length === 1 && listed[0].startsWith(expected)) break;
      if (Date.now() > deadline) {
        throw new Error(`expected one backup "${expected}…", listed: ${JSON.stringify(listed)}`);
      }
    }
    console.log(`    listed: ${expected}`);
  });

  await step("restore-names-what-it-replaces-and-shows-its-steps-live", async () => {
    await onDemand.getByRole("button", { name: "Restore…" }).click();
    const confirm = card.getByRole("group", { name: "Confirm restore" });
    await expectVisible(confirm);
    const question = (await confirm.textContent()) ?? "";
    for (const words of [
      `Replace ${storeId}'s database and files (orders, customers, products, uploads) with the backup of ` +
        `${snapshotTime}?`,
      "Everything since then is replaced",
      "offline while it is restored",
    ]) {
      if (!question.includes(words)) throw new Error(`the confirmation does not say "${words}": ${question}`);
    }
    await page.screenshot({ path: join(shots, "restore-confirmation.png"), fullPage: true });
    await confirm.getByRole("button", { name: "Yes, restore" }).click();
    // Sample the phase and the restore's steps as they change, without reloading the page.
    const phases = [];
    const progress = new Set();
    const restoreSteps = card.getByRole("list", { name: "Restore steps" });
    let named = "";
    const deadline = Date.now() + 180_000;
    for (;;) {
      const now = (await phase.textContent())?.trim();
      if (phases.at(-1) !== now) phases.push(now);
      if (now === "restoring" && (await restoreSteps.isVisible())) {
        const states = await restoreSteps.getByRole("listitem").allTextContents();
        if (progress.size === 0) await page.screenshot({ path: join(shots, "restoring.png"), fullPage: true });
        progress.add(states.map((text) => text.replace(/\s+/g, " ").trim()).join(", "));
        named = (await card.getByText(/^Restore of backup [0-9a-f]{8}$/).textContent().catch(() => named)) ?? named;
      }
      if (now === "ready" && phases.includes("restoring")) break;
      if (now === "failed") throw new Error(`the restore failed: ${await card.textContent()}`);
      if (Date.now() > deadline) throw new Error(`not restored in time; phases seen ${[...phases]}`);
      await page.waitForTimeout(50);
    }
    if (!named.includes(`Restore of backup ${snapshot.id.slice(0, 8)}`)) {
      throw new Error(`the restore does not name the backup ${snapshot.id.slice(0, 8)}: "${named}"`);
    }
    const seen = [...progress].join(" | ");
    for (const name of ["safety-backup", "stop-writers", "restore-data", "start-writers", "verify"]) {
      if (!seen.includes(name)) throw new Error(`the restore's step ${name} was not shown: ${seen}`);
    }
    if (progress.size < 2) throw new Error(`the restore's steps did not move live: ${seen}`);
    console.log(`    phases seen: ${phases.join(" → ")}; the restore's steps seen in ${progress.size} states`);
    await expectVisible(card.getByRole("link", { name: "Storefront" }));
    // The open panel follows the store by itself: the backup the restore took first is not left "running".
    await backups.getByRole("listitem").filter({ hasText: "running" }).first().waitFor({ state: "detached", timeout: 30_000 });
  });

  await step("pause-shows-the-store-paused-and-resume-brings-it-back", async () => {
    await card.getByRole("button", { name: "Pause" }).click();
    await card.getByTestId("phase").filter({ hasText: /^paused$/ }).waitFor({ timeout: 60_000 });
    // Paused, it offers Resume, no links to a shop that is closed, and its backups still.
    await expectVisible(card.getByRole("button", { name: "Resume" }));
    if (await card.getByRole("link", { name: "Storefront" }).isVisible()) {
      throw new Error("a paused store links its storefront");
    }
    await page.screenshot({ path: join(shots, "paused.png"), fullPage: true });
    await card.getByRole("button", { name: "Resume" }).click();
    const phases = [];
    const deadline = Date.now() + 120_000;
    for (;;) {
      const now = (await phase.textContent())?.trim();
      if (phases.at(-1) !== now) phases.push(now);
      if (now === "ready") break;
      if (now === "failed") throw new Error(`the resume failed: ${await card.textContent()}`);
      if (Date.now() > deadline) throw new Error(`not resumed in time; phases seen ${phases}`);
      await page.waitForTimeout(50);
    }
    console.log(`    phases seen: ${phases.join(" → ")}`);
    await expectVisible(card.getByRole("link", { name: "Storefront" }));
  });

  await step("a-store-behind-the-platforms-version-is-upgraded-with-its-steps-shown-live", async () => {
    await askHarness("newer-version");
    // The versions on offer are asked when the dashboard opens.
    await page.reload();
    const behind = card.getByTestId("behind");
    await expectVisible(behind, 30_000);
    const says = (await behind.textContent())?.trim();
    if (says !== `${newerVersion} available`) throw new Error(`the store's badge says "${says}"`);
    await page.screenshot({ path: join(shots, "behind.png"), fullPage: true });
    await card.getByRole("button", { name: `Upgrade to ${newerVersion}` }).click();
    const phases = [];
    const progress = new Set();
    const upgradeSteps = card.getByRole("list", { name: "Upgrade steps" });
    const deadline = Date.now() + 180_000;
    for (;;) {
      const now = (await phase.textContent())?.trim();
      if (phases.at(-1) !== now) phases.push(now);
      if (now === "upgrading" && (await upgradeSteps.isVisible())) {
        const states = await upgradeSteps.getByRole("listitem").allTextContents();
        progress.add(states.map((text) => text.replace(/\s+/g, " ").trim()).join(", "));
      }
      if (now === "ready" && phases.includes("upgrading")) break;
      if (now === "failed") throw new Error(`the upgrade failed: ${await card.textContent()}`);
      if (Date.now() > deadline) throw new Error(`not upgraded in time; phases seen ${phases}`);
      await page.waitForTimeout(50);
    }
    const seen = [...progress].join(" | ");
    for (const name of ["safety-backup", "stop-writers", "migrate", "start-writers", "verify"]) {
      if (!seen.includes(name)) throw new Error(`the upgrade's step ${name} was not shown: ${seen}`);
    }
    console.log(`    phases seen: ${phases.join(" → ")}; the upgrade's steps seen in ${progress.size} states`);
    await behind.waitFor({ state: "detached", timeout: 30_000 });
    const text = (await card.textContent()) ?? "";
    if (!text.includes(`version ${newerVersion}`)) throw new Error(`the store does not show its new version: ${text}`);
    await expectVisible(card.getByRole("link", { name: "Storefront" }));
    // The page was reloaded: the store's backups are opened again for the steps that follow.
    await card.getByText("Backups", { exact: true }).click();
    await expectVisible(onDemand, 30_000);
  });

  const clone = page.getByRole("listitem", { name: `Store Browser shop (copy) (${cloneStoreId})` });
  await step("clone-to-a-new-store", async () => {
    await onDemand.getByRole("button", { name: "Clone to a new store…" }).click();
    const form = card.getByRole("form", { name: "Clone to a new store" });
    await expectVisible(form);
    const says = (await form.textContent()) ?? "";
    const words = `A new store with ${storeId}'s orders, customers, products and uploads as of ${snapshotTime}`;
    if (!says.includes(words)) throw new Error(`the form does not say "${words}": ${says}`);
    await form.getByLabel("New store id").fill(cloneStoreId);
    // Named after its source unless the owner names it.
    const name = await form.getByLabel("New name").inputValue();
    if (name !== "Browser shop (copy)") throw new Error(`the clone's name is offered as "${name}"`);
    await form.getByRole("button", { name: "Clone", exact: true }).click();
    await expectVisible(clone, 30_000);
    await form.waitFor({ state: "detached" });
    // Its own steps: the backup restored into it before its bootstrap.
    await expectVisible(stepNamed(clone, "restore-backup"));
    await expectVisible(clone.getByTestId("phase").filter({ hasText: "ready" }), 180_000);
    const storefront = await clone.getByRole("link", { name: "Storefront" }).getAttribute("href");
    if (storefront !== `http://${cloneStoreId}.localhost/`) {
      throw new Error(`the clone's storefront link ${storefront}`);
    }
    // The source is not changed.
    await expectVisible(phase.filter({ hasText: "ready" }));
  });

  await step("a-deleted-store-is-listed-with-its-backups-and-brought-back", async () => {
    const before = Date.now();
    await card.getByRole("button", { name: "Delete" }).click();
    await card.getByRole("button", { name: "Yes, delete" }).click();
    await card.waitFor({ state: "detached", timeout: 180_000 });
    const deleted = page
      .getByRole("list", { name: "Deleted stores" })
      .getByRole("listitem")
      .filter({ hasText: storeId });
    await expectVisible(deleted, 30_000);
    const after = Date.now();
    const text = (await deleted.textContent()) ?? "";
    // Kept for the platform's 30 days from the deletion.
    const month = 30 * 86_400_000;
    const until = [await localDate(before + month), await localDate(after + month)];
    if (!until.some((date) => text.includes(`backups kept until ${date}`))) {
      throw new Error(`expected its backups kept until ${until[0]}: ${text}`);
    }
    if (!text.includes("Browser shop")) throw new Error(`the deleted store is not named: ${text}`);
    await page.screenshot({ path: join(shots, "deleted-store-with-its-backups-kept.png"), fullPage: true });
    await deleted.getByRole("button", { name: "Bring back" }).click();
    await expectVisible(card, 30_000);
    await deleted.waitFor({ state: "detached", timeout: 30_000 });
    // Brought back from its backup, under its own id.
    await expectVisible(stepNamed(card, "restore-backup"));
    await expectVisible(phase.filter({ hasText: "ready" }), 180_000);
    const storefront = await card.getByRole("link", { name: "Storefront" }).getAttribute("href");
    if (storefront !== `http://${storeId}.localhost/`) throw new Error(`the storefront link ${storefront}`);
  });

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
    for (const other of [broken, clone]) {
      await other.getByRole("button", { name: "Delete" }).click();
      await other.getByRole("button", { name: "Yes, delete" }).click();
      await other.waitFor({ state: "detached", timeout: 180_000 });
    }
  });

  await step("backups-say-when-the-platform-has-no-object-store", async () => {
    await askHarness("provisioner-without-backups");
    await medusa.getByText("Backups", { exact: true }).click();
    await expectVisible(medusa.getByRole("alert").filter({ hasText: "backups are off" }), 30_000);
    await expectVisible(medusa.getByRole("button", { name: "Back up now" }));
  });

  await step("delete-the-last-store", async () => {
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
