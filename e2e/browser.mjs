// Headless Debian chromium for the e2e tests, one fresh profile per test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/**
 * Launches chromium with a fresh profile; after test `t` closes it, removes the profile, then
 * runs each of `cleanups` (servers to stop) in order. `viewport` as playwright takes it.
 */
export async function launch(t, cleanups = [], viewport = undefined) {
  const profile = mkdtempSync(path.join(tmpdir(), 'herald-e2e-chromium-'));
  let context = null;
  // One hook, in order: the browser must be gone before its profile is removed.
  t.after(async () => {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true, maxRetries: 5 });
    for (const cleanup of cleanups) await cleanup();
  });
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
  return context;
}
