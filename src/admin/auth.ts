/**
 * Who may use the admin endpoint.
 *
 * - Bound to a loopback address and no `admin.token`: anyone on this machine. Requests must name
 *   the endpoint by IP or `localhost` in their Host header (a web page cannot reach it through a
 *   DNS name that resolves to 127.0.0.1: DNS rebinding).
 * - `admin.token` set: every request needs `Authorization: Bearer <token>`, or the session cookie
 *   the dashboard's login form sets; anything else gets 401. Any address other than loopback
 *   requires a token (a config error: config/checks.ts).
 * - Requests that change something are refused when a browser says they come from another origin.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export const SESSION_COOKIE = 'fulcrum_admin';

export type Verdict = 'ok' | 'unauthorized' | 'bad-host' | 'cross-origin';

export class Auth {
  private readonly token: Buffer | undefined;
  /** The session cookie's value: derived from the token, so the cookie never holds the token. */
  readonly session: string | undefined;

  constructor(token: string | undefined) {
    this.token = token === undefined ? undefined : Buffer.from(token);
    this.session =
      token === undefined
        ? undefined
        : createHmac('sha256', token).update('fulcrum admin session').digest('hex');
  }

  get required(): boolean {
    return this.token !== undefined;
  }

  check(req: IncomingMessage): Verdict {
    if (req.method !== 'GET' && req.method !== 'HEAD' && crossOrigin(req)) return 'cross-origin';
    if (this.token === undefined) return hostIsLiteral(req.headers.host) ? 'ok' : 'bad-host';
    const auth = req.headers.authorization;
    if (auth !== undefined && /^bearer\s/i.test(auth) && this.matches(auth.slice(7).trim())) return 'ok';
    const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (
      cookie !== undefined &&
      this.session !== undefined &&
      equal(Buffer.from(cookie), Buffer.from(this.session))
    ) {
      return 'ok';
    }
    return 'unauthorized';
  }

  /** Whether a token typed into the login form is the right one. */
  matches(candidate: string): boolean {
    return this.token !== undefined && equal(Buffer.from(candidate), this.token);
  }
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Host header: an IP literal or localhost, with an optional port. */
function hostIsLiteral(host: string | undefined): boolean {
  if (host === undefined) return true; // HTTP/1.0 clients
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name.toLowerCase() === 'localhost' || isIP(name) !== 0;
}

/** A browser request from a page of another origin (curl and the CLI send no Origin). */
function crossOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return req.headers['sec-fetch-site'] === 'cross-site';
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function loginPage(failed: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fulcrum admin: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:15px system-ui,sans-serif;background:#0f1419;color:#dde3ea;display:grid;place-items:center;height:100vh;margin:0}
form{background:#18202a;padding:2em;border-radius:8px;display:grid;gap:.8em;min-width:18em}
input,button{font:inherit;padding:.5em;border-radius:4px;border:1px solid #3a4656;background:#0f1419;color:inherit}
button{background:#2f6fde;border:0;cursor:pointer}.err{color:#ff6b6b}</style></head>
<body><form method="post" action="/login"><strong>Fulcrum admin</strong>
<label>Admin token <input type="password" name="token" autocomplete="current-password" autofocus required></label>
${failed ? '<span class="err">Wrong token.</span>' : ''}<button type="submit">Sign in</button></form></body></html>`;
}
