// People signing in to the dashboard with the organisation's identity provider, in Debian's Chromium: a real
// OpenID provider (tools/oidc/provider.mjs, the `oidc-provider` package) with users, passwords and groups, and the
// whole platform behind the gateway. Run by test-support/tests/signin.rs, which sets:
//   GATEWAY_URL (http://localhost:<port>), STORE_ID (the store the owner creates and deletes), TENANT_A, TENANT_B,
//   SCREENSHOTS, HARNESS_REQUEST and HARNESS_REPLY (the script writes a request into HARNESS_REQUEST and waits until
//   the harness removes it, having written its answer into HARNESS_REPLY). The requests:
//     "rotate"   the provider signs with a new key from now on (the old one is no longer published).
// Users (password: "<user>-password"): olivia owns TENANT_A's stores, vera views them, bruno owns TENANT_B's.
// Exits non-zero with a message at the first step that fails.

import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { env, expectVisible, open } from "./browser.mjs";

const url = env("GATEWAY_URL");
const storeId = env("STORE_ID");
const tenantA = env("TENANT_A");
const tenantB = env("TENANT_B");
const shots = env("SCREENSHOTS");
const harnessRequest = env("HARNESS_REQUEST");
const harnessReply = env("HARNESS_REPLY");

const { browser, page, step } = await open({ width: 1280, height: 900 }, shots);

async function askHarness(request) {
  rmSync(harnessReply, { force: true });
  writeFileSync(harnessRequest, request);
  const deadline = Date.now() + 60_000;
  while (existsSync(harnessRequest)) {
    if (Date.now() > deadline) throw new Error(`the harness did not answer "${request}"`);
    await page.waitForTimeout(100);
  }
  return existsSync(harnessReply) ? readFileSync(harnessReply, "utf8").trim() : "";
}

// Signs `user` in from the dashboard's sign-in page, through the provider's own form.
async function signIn(user) {
  await page.goto(url);
  await page.getByRole("link", { name: "Sign in with Test IdP" }).click();
  await expectVisible(page.getByRole("heading", { name: "Sign in to the test provider" }));
  if (!page.url().startsWith("http://127.0.0.1:")) throw new Error(`not at the provider: ${page.url()}`);
  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password").fill(`${user}-password`);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expectVisible(page.getByRole("status").filter({ hasText: "Live" }), 20_000);
  if (!page.url().startsWith(url)) throw new Error(`not back at the dashboard: ${page.url()}`);
}

// Signs out with the dashboard's button, and at the provider too.
async function signOut() {
  await page.getByRole("button", { name: "Sign out" }).click();
  await expectVisible(page.getByRole("button", { name: "Yes, sign me out" }));
  await page.getByRole("button", { name: "Yes, sign me out" }).click();
  await expectVisible(page.getByRole("link", { name: "Sign in with Test IdP" }));
}

// A gRPC-web call from the page itself, as its own code would make it (the session cookie goes along; `csrf` in the
// header), answering the gRPC status code.
async function callFromThePage(method, storeIdField, csrf) {
  return page.evaluate(
    async ({ method, storeIdField, csrf }) => {
      const id = new TextEncoder().encode(storeIdField);
      const message = new Uint8Array([0x0a, id.length, ...id]);
      const frame = new Uint8Array(5 + message.length);
      new DataView(frame.buffer).setUint32(1, message.length);
      frame.set(message, 5);
      const response = await fetch(`/store_platform.v1.ProvisionerService/${method}`, {
        method: "POST",
        headers: {
          "content-type": "application/grpc-web+proto",
          "x-grpc-web": "1",
          ...(csrf ? { "x-csrf-token": csrf } : {}),
        },
        body: frame,
      });
      const inHeaders = response.headers.get("grpc-status");
      if (inHeaders !== null) return Number(inHeaders);
      const body = new TextDecoder().decode(await response.arrayBuffer());
      const match = body.match(/grpc-status:\s*(\d+)/);
      return match ? Number(match[1]) : -1;
    },
    { method, storeIdField, csrf },
  );
}

const session = () => page.evaluate(async () => (await fetch("/auth/session")).json());
const store = () => page.getByRole("listitem", { name: `Store Signed-in shop (${storeId})` });

try {
  await step("an-owner-of-tenant-a-signs-in-with-the-provider", async () => {
    await signIn("olivia");
    await expectVisible(page.getByTestId("who").filter({ hasText: `owner · tenant ${tenantA}` }));
    const cookies = await page.context().cookies(url);
    const cookie = cookies.find((c) => c.name === "store_platform_session");
    if (!cookie || !cookie.httpOnly || cookie.sameSite !== "Strict") {
      throw new Error(`the session cookie is not HttpOnly and SameSite=Strict: ${JSON.stringify(cookie)}`);
    }
    const visible = await page.evaluate(() => document.cookie);
    if (visible.includes("store_platform_session")) throw new Error("the page's JavaScript sees the session");
  });

  await step("the-owner-creates-a-store", async () => {
    await page.getByLabel("Store id").fill(storeId);
    await page.getByLabel("Name").fill("Signed-in shop");
    await page.getByLabel("Admin email").fill("olivia@example.test");
    await page.getByRole("button", { name: "Create store" }).click();
    await expectVisible(store());
    await expectVisible(store().getByTestId("phase").filter({ hasText: "ready" }), 180_000);
    await expectVisible(store().getByRole("button", { name: "Delete" }));
  });

  await step("a-viewer-of-tenant-a-sees-the-store-and-no-action", async () => {
    await signOut();
    await signIn("vera");
    await expectVisible(page.getByTestId("who").filter({ hasText: `viewer · tenant ${tenantA}` }));
    await expectVisible(store());
    await expectVisible(store().getByRole("list", { name: "Steps" }));
    for (const name of ["Delete", "Show admin credentials", "Pause", "Retry"]) {
      if ((await store().getByRole("button", { name }).count()) > 0) throw new Error(`a viewer sees "${name}"`);
    }
    if ((await page.getByRole("button", { name: "Create store" }).count()) > 0) {
      throw new Error("a viewer sees the create form");
    }
  });

  await step("the-api-refuses-the-viewer-what-the-page-hides", async () => {
    const { csrf, role } = await session();
    if (role !== "viewer") throw new Error(`role ${role}`);
    for (const method of ["DeleteStore", "GetStoreCredentials", "RetryStore"]) {
      const code = await callFromThePage(method, storeId, csrf);
      if (code !== 7) throw new Error(`${method} answered ${code}, not PERMISSION_DENIED (7)`);
    }
    // Without the CSRF token the cookie is not enough, whatever the call.
    const code = await callFromThePage("GetStore", storeId, null);
    if (code !== 16) throw new Error(`a call without the CSRF token answered ${code}, not UNAUTHENTICATED (16)`);
    if ((await callFromThePage("GetStore", storeId, csrf)) !== 0) throw new Error("a viewer cannot read");
  });

  await step("a-person-of-tenant-b-sees-nothing-of-tenant-a", async () => {
    await signOut();
    await signIn("bruno");
    await expectVisible(page.getByTestId("who").filter({ hasText: `owner · tenant ${tenantB}` }));
    await expectVisible(page.getByText("No stores yet."));
    const { csrf } = await session();
    const code = await callFromThePage("GetStore", storeId, csrf);
    if (code !== 5) throw new Error(`GetStore of tenant A's store answered ${code}, not NOT_FOUND (5)`);
  });

  await step("after-the-provider-rotates-its-key-the-owner-signs-in-and-deletes-the-store", async () => {
    await signOut();
    await askHarness("rotate");
    await signIn("olivia");
    await store().getByRole("button", { name: "Delete" }).click();
    await store().getByRole("button", { name: "Yes, delete" }).click();
    await store().waitFor({ state: "detached", timeout: 120_000 });
  });

  await step("signed-out-the-page-can-call-nothing", async () => {
    const { csrf } = await session();
    await signOut();
    const code = await callFromThePage("GetStore", storeId, csrf);
    if (code !== 16) throw new Error(`a call after signing out answered ${code}, not UNAUTHENTICATED (16)`);
    const after = await session();
    if (after.signedIn) throw new Error("still signed in");
  });
} finally {
  await browser.close();
}
