/** The two cookie operations the middleware needs: read one from `Cookie`, write `Set-Cookie`. */

export interface CookieOptions {
  /** Milliseconds; null makes a browser-session cookie (no Expires). */
  maxAge?: number | null;
  path?: string;
  domain?: string;
  httpOnly?: boolean;
  secure?: boolean;
  sameSite?: 'strict' | 'lax' | 'none' | false;
}

/** The value of cookie `name` in a `Cookie` header (percent-decoded), or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    try {
      return decodeURIComponent(value);
    } catch {
      return value;
    }
  }
  return undefined;
}

const SAME_SITE = { strict: 'Strict', lax: 'Lax', none: 'None' } as const;

/** A `Set-Cookie` value; `expires` set to the epoch clears the cookie. */
export function serializeCookie(name: string, value: string, options: CookieOptions, expires?: Date): string {
  let out = `${name}=${encodeURIComponent(value)}`;
  out += `; Path=${options.path ?? '/'}`;
  if (options.domain) out += `; Domain=${options.domain}`;
  if (expires) {
    const maxAge = Math.max(0, Math.round((expires.getTime() - Date.now()) / 1000));
    out += `; Expires=${expires.toUTCString()}; Max-Age=${maxAge}`;
  }
  if (options.httpOnly !== false) out += '; HttpOnly';
  if (options.secure) out += '; Secure';
  if (options.sameSite) out += `; SameSite=${SAME_SITE[options.sameSite]}`;
  return out;
}

/** Adds a `Set-Cookie` value to whatever a response already has. */
export function appendSetCookie(
  current: number | string | readonly string[] | undefined,
  cookie: string,
): string[] {
  if (current === undefined) return [cookie];
  if (Array.isArray(current)) return [...current, cookie];
  return [String(current), cookie];
}
