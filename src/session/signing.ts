/**
 * Signed session-id cookies, in the format express-session and cookie-signature use:
 * `s:` + value + `.` + base64 HMAC-SHA256 of the value (padding stripped). A list of secrets lets
 * them rotate: values are signed with the first and accepted when signed with any.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

function signature(value: string, secret: string): string {
  return createHmac('sha256', secret).update(value).digest('base64').replace(/=+$/, '');
}

/** `s:<value>.<signature>` with the given (first, current) secret. */
export function signCookie(value: string, secret: string): string {
  return `s:${value}.${signature(value, secret)}`;
}

export interface Unsigned {
  value: string;
  /** Index of the secret that matched: anything but 0 means the cookie should be re-signed. */
  secretIndex: number;
}

/** The value when `signed` carries a valid signature under one of `secrets`, else undefined. */
export function unsignCookie(signed: string, secrets: readonly string[]): Unsigned | undefined {
  if (!signed.startsWith('s:')) return undefined;
  const dot = signed.lastIndexOf('.');
  if (dot < 2) return undefined;
  const value = signed.slice(2, dot);
  const given = Buffer.from(signed.slice(dot + 1));
  for (let i = 0; i < secrets.length; i++) {
    const expected = Buffer.from(signature(value, secrets[i]!));
    // Constant time: the comparison must not tell how much of a forged signature was right.
    if (expected.length === given.length && timingSafeEqual(expected, given)) {
      return { value, secretIndex: i };
    }
  }
  return undefined;
}
