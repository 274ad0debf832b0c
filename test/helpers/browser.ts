/**
 * Debian's Chromium, driven by playwright-core, for the tests that look at a page as a user
 * would (the dashboard, the demo's lab panel, the lab report). One launch for all of them: a
 * throw-away profile, headless, no network of its own; `close()` ends the browser and removes the
 * profile.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** A test's `skip` when Chromium is not installed (`npm test` installs it), else false. */
export const CHROMIUM_MISSING: string | false = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; npm test does it)`;

export interface OpenBrowser {
  context: BrowserContext;
  /** The first page, open and blank. */
  page: Page;
  /** Ends the browser and removes its profile. */
  close(): Promise<void>;
}

export async function openChromium(
  options: {
    viewport?: { width: number; height: number };
    javaScriptEnabled?: boolean;
    timeoutMs?: number;
  } = {},
): Promise<OpenBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'fulcrum-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      ...(options.viewport ? { viewport: options.viewport } : {}),
      ...(options.javaScriptEnabled === false ? { javaScriptEnabled: false } : {}),
      timeout: options.timeoutMs ?? 30_000,
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
