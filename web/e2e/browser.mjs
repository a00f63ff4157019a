// What the browser scripts of web/e2e share: their settings from the environment, Debian's Chromium, and steps that
// leave a screenshot each (failed-<step>.png for the one that fails).

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

// The environment variable `name`, which must be set.
export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

// Chromium ($CHROMIUM, default Debian's) with one page of `viewport`; screenshots go into directory `shots`.
export async function open(viewport, shots) {
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
  const page = await browser.newPage({ viewport });
  let shot = 0;
  // Runs `action` as the step `name`: prints "ok  <name> (<ms> ms)" and a screenshot, or throws naming the step.
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
  return { browser, page, step };
}

// Waits until `locator` is visible.
export const expectVisible = (locator, timeout = 10_000) => locator.waitFor({ state: "visible", timeout });
