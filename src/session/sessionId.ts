/** Session ids: 24 random bytes, base64url (32 characters), as express-session's uid-safe. */
import { randomBytes } from 'node:crypto';

export function generateSessionId(): string {
  return randomBytes(24).toString('base64url');
}
