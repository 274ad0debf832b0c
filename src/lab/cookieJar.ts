/**
 * The cookies of one simulated user (the lab's clients, the demo's users, the VIP client in the
 * redundancy pair), kept as a browser would: each `Set-Cookie` parsed by the balancer's own
 * parser, a deleted cookie (emptied, `Max-Age` ≤ 0, `Expires` past) dropped from the jar.
 */
import { parseSetCookie } from '../sticky/cookieHeader.js';

export class CookieJar extends Map<string, string> {
  /** The `Cookie` header to send ('' when the jar is empty). */
  header(): string {
    return [...this].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** Keeps what an answer's `Set-Cookie` lines set, and drops what they delete. */
  keep(setCookie: readonly string[] | undefined): void {
    for (const line of setCookie ?? []) {
      const c = parseSetCookie(line);
      if (c === undefined) continue;
      if (c.deleted) this.delete(c.name);
      else this.set(c.name, c.value);
    }
  }
}
