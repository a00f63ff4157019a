// The owner of a Medusa store finds an order in the store's own admin (Medusa's dashboard at /app), in Debian's
// Chromium: signs in with the credentials the platform gave and opens the order. Run by
// services/provisioner/tests/platform.rs in the real node's network namespace, where the store's Ingress answers at
// http://<store>.localhost. Env:
//   ADMIN_URL        the admin's address, e.g. http://shop.localhost/app
//   ADMIN_EMAIL, ADMIN_PASSWORD   the store's admin credentials (GetStoreCredentials)
//   ORDER_ID         the order to find (order_…)
//   CUSTOMER_EMAIL   the e-mail address the order must show
//   SCREENSHOTS      a directory
// Exits non-zero with a message at the first step that fails.

import { env, expectVisible, open } from "./browser.mjs";

const admin = env("ADMIN_URL").replace(/\/$/, "");
const email = env("ADMIN_EMAIL");
const password = env("ADMIN_PASSWORD");
const orderId = env("ORDER_ID");
const customer = env("CUSTOMER_EMAIL");

const { browser, page, step } = await open({ width: 1280, height: 900 }, env("SCREENSHOTS"));
try {
  await step("sign-in-to-the-stores-admin", async () => {
    await page.goto(`${admin}/login`);
    await page.getByPlaceholder("Email").fill(email);
    await page.getByPlaceholder("Password").fill(password);
    await page.getByRole("button", { name: "Continue with Email" }).click();
    await page.waitForURL((url) => !url.pathname.endsWith("/login"), { timeout: 60_000 });
  });

  await step("the-order-is-there", async () => {
    await page.goto(`${admin}/orders/${orderId}`);
    await expectVisible(page.getByText(customer).first(), 60_000);
  });
} catch (error) {
  console.error(error.message);
  await browser.close();
  process.exit(1);
}
await browser.close();
