/**
 * Fulcrum's own version, read once from its package.json (never `npm_package_version`, which is
 * the version of whatever project runs `npx fulcrum`).
 */
import { readFileSync } from 'node:fs';

/** The version in Fulcrum's package.json, or "unknown" when the file cannot be read. */
export const VERSION: string = readVersion();

function readVersion(): string {
  // Compiled to dist/src/core/version.js: the package root is three levels up.
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      name?: string;
      version?: string;
    };
    return pkg.name === 'fulcrum' && typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
