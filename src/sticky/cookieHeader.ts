/** Reading cookies as the proxy sees them: a joined `Cookie` header, raw `Set-Cookie` values. */

/**
 * Calls `accept` with each value of cookie `name` in a `Cookie` header, in order (raw, surrounding
 * quotes removed), until it returns something; returns that, or undefined. Several values happen
 * when cookies of several paths or domains share a name.
 */
export function findCookie<T>(
  header: string,
  name: string,
  accept: (value: string) => T | undefined,
): T | undefined {
  let from = 0;
  for (;;) {
    const at = header.indexOf(name, from);
    if (at < 0) return undefined;
    from = at + name.length;
    if (header.charCodeAt(from) !== 61 /* = */) continue;
    // Must start a pair: at the beginning, or after ';' and optional spaces.
    let i = at - 1;
    while (i >= 0 && (header.charCodeAt(i) === 32 || header.charCodeAt(i) === 9)) i--;
    if (i >= 0 && header.charCodeAt(i) !== 59 /* ; */) continue;
    let end = header.indexOf(';', from + 1);
    if (end < 0) end = header.length;
    let value = header.slice(from + 1, end).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    const found = accept(value);
    if (found !== undefined) return found;
    from = end;
  }
}

export interface SetCookie {
  name: string;
  value: string;
  /** The cookie is being deleted (Max-Age ≤ 0, or Expires in the past, or an empty value). */
  deleted: boolean;
}

/** The name, value and whether it deletes the cookie, of one `Set-Cookie` value; undefined if malformed. */
export function parseSetCookie(text: string, now = Date.now()): SetCookie | undefined {
  const semi = text.indexOf(';');
  const pair = semi < 0 ? text : text.slice(0, semi);
  const eq = pair.indexOf('=');
  if (eq <= 0) return undefined;
  const name = pair.slice(0, eq).trim();
  let value = pair.slice(eq + 1).trim();
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  let deleted = value === '';
  if (semi >= 0) {
    let maxAge: number | undefined;
    let expires: number | undefined;
    for (const attr of text.slice(semi + 1).split(';')) {
      const aeq = attr.indexOf('=');
      const key = (aeq < 0 ? attr : attr.slice(0, aeq)).trim().toLowerCase();
      const val = aeq < 0 ? '' : attr.slice(aeq + 1).trim();
      if (key === 'max-age' && /^-?\d+$/.test(val)) maxAge = Number(val);
      else if (key === 'expires') {
        const t = Date.parse(val);
        if (!Number.isNaN(t)) expires = t;
      }
    }
    // RFC 6265 5.3: Max-Age wins over Expires.
    if (maxAge !== undefined) deleted ||= maxAge <= 0;
    else if (expires !== undefined) deleted ||= expires <= now;
  }
  return { name, value, deleted };
}
