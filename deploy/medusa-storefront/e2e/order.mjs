// A shopper's whole purchase, in Debian's Chromium driven by playwright-core, against a running storefront and its
// Medusa backend (seeded by deploy/medusa: product "sample-t-shirt", shipping "Standard Shipping"). Env:
//   STOREFRONT_URL   where the storefront answers, e.g. http://127.0.0.1:58080
//   CUSTOMER_EMAIL   the order's e-mail
//   SCREENSHOTS      a directory: one screenshot per step, and failed-<step>.png for the step that failed
//   CHROMIUM         optional, default /usr/bin/chromium
//   PRODUCT_TITLE    optional, the product to buy (default "Sample T-Shirt", the seed's)
//   IMAGE_PREFIX     optional: the product must show an image, loaded, from an address starting with this (e.g. the
//                    store's own http://shop.localhost/static/), in the list and on its page
// Prints `order: <Medusa order id>` and exits 0 once the confirmation shows; exits non-zero with a message at the
// first step that fails.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
};
const url = env("STOREFRONT_URL");
const email = env("CUSTOMER_EMAIL");
const shots = env("SCREENSHOTS");
const title = process.env.PRODUCT_TITLE || "Sample T-Shirt";
const imagePrefix = process.env.IMAGE_PREFIX || "";
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
// A phone-width screen: shoppers mostly come on phones.
const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
// What the page complains about (CSP, failed requests, React) is the first clue when a step fails.
const complaints = [];
page.on("console", (message) => {
  if (message.type() === "error") complaints.push(message.text());
});
page.on("pageerror", (error) => complaints.push(error.message));

let shot = 0;
async function step(name, action) {
  const started = Date.now();
  try {
    await action();
  } catch (error) {
    await page.screenshot({ path: join(shots, `failed-${name}.png`), fullPage: true }).catch(() => {});
    const alerts = await page
      .getByRole("alert")
      .allTextContents()
      .catch(() => []);
    const clues = [...alerts.map((a) => `page shows: ${a}`), ...complaints.map((c) => `console: ${c}`)];
    throw new Error([`step "${name}" failed: ${error.message}`, ...clues].join("\n  "));
  }
  // Nothing may stick out sideways on a phone.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) {
    await page.screenshot({ path: join(shots, `failed-${name}.png`), fullPage: true });
    throw new Error(`step "${name}": the page is ${overflow} px wider than the screen`);
  }
  shot += 1;
  await page.screenshot({ path: join(shots, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  console.log(`ok  ${name} (${Date.now() - started} ms)`);
}
const expectVisible = (locator, timeout = 15_000) => locator.waitFor({ state: "visible", timeout });
const escaped = title.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
// The image inside `scope` really showed: loaded (not a broken-image icon) from where it should come from.
async function expectImage(scope) {
  if (!imagePrefix) return;
  const image = scope.locator("img").first();
  await expectVisible(image);
  await page.waitForFunction((img) => img.complete, await image.elementHandle(), { timeout: 15_000 });
  const { src, width } = await image.evaluate((img) => ({ src: img.currentSrc || img.src, width: img.naturalWidth }));
  if (!src.startsWith(imagePrefix)) throw new Error(`the image comes from ${src}, not from ${imagePrefix}`);
  if (!width) throw new Error(`the image at ${src} did not load`);
}

try {
  const product = page.getByRole("link", { name: new RegExp(escaped) });
  await step("product-list", async () => {
    await page.goto(url);
    await expectVisible(product);
    await expectImage(product);
  });

  await step("product-page", async () => {
    await product.click();
    await expectVisible(page.getByRole("heading", { level: 1, name: title }));
    await expectImage(page.getByRole("article"));
  });

  await step("add-two-to-the-cart", async () => {
    await page.getByLabel("Quantity").fill("2");
    await page.getByRole("button", { name: "Add to cart" }).click();
    await expectVisible(page.getByRole("status").filter({ hasText: "Added 2" }));
    await expectVisible(page.getByRole("link", { name: "Cart (2)" }));
  });

  await step("cart", async () => {
    await page.getByRole("link", { name: "Cart (2)" }).click();
    const line = page.getByRole("listitem", { name: title });
    await expectVisible(line);
    const quantity = (await line.getByTestId("quantity").textContent())?.trim();
    if (quantity !== "2") throw new Error(`the cart holds ${quantity}, not 2`);
  });

  await step("checkout-form", async () => {
    await page.getByRole("link", { name: "Checkout" }).click();
    await page.getByLabel("E-mail").fill(email);
    await page.getByLabel("First name").fill("Erika");
    await page.getByLabel("Last name").fill("Mustermann");
    await page.getByLabel("Address", { exact: true }).fill("Heidestraße 17");
    await page.getByLabel("City").fill("Köln");
    await page.getByLabel("Postal code").fill("51147");
    await page.getByLabel("Phone").fill("+49 221 1234567");
    // The region's first country; the seed has one.
    const country = page.getByLabel("Country");
    const first = await country.locator("option").first().getAttribute("value");
    await country.selectOption(first);
    await page.getByRole("radio", { name: /Standard Shipping/ }).check();
    await page.getByRole("radio", { name: "Pay on delivery (manual payment)" }).check();
  });

  const confirmation = page.getByTestId("order-confirmation");
  await step("place-order", async () => {
    await page.getByRole("button", { name: "Place order" }).click();
    await expectVisible(confirmation, 60_000);
    const shown = await confirmation.textContent();
    if (!shown?.includes(email)) throw new Error(`the confirmation does not name ${email}: ${shown}`);
    const line = confirmation.getByRole("listitem", { name: title });
    await expectVisible(line);
    if (!(await line.textContent())?.includes("× 2")) throw new Error("the order does not hold 2 of the product");
    await expectVisible(page.getByRole("link", { name: "Cart (0)" }));
  });

  const orderId = await confirmation.getAttribute("data-order-id");
  if (!orderId?.startsWith("order_")) throw new Error(`the confirmation carries no order id (${orderId})`);

  await step("confirmation-survives-a-reload", async () => {
    await page.reload();
    await expectVisible(page.getByTestId("order-confirmation"));
    const again = await page.getByTestId("order-confirmation").getAttribute("data-order-id");
    if (again !== orderId) throw new Error(`after a reload the page shows order ${again}`);
  });

  console.log(`order: ${orderId}`);
} catch (error) {
  console.error(error.message);
  await browser.close();
  process.exit(1);
}
await browser.close();
