/** `redirectHttps`: where a plaintext request is sent (308) on the TLS listener. */

/** The https:// URL of a request for `host` (no port) and `target`, on `port`. */
export function httpsLocation(host: string, port: number, target: string): string {
  return `https://${host}${port === 443 ? '' : `:${port}`}${target}`;
}

/** The 308 answer of an HTTP/1.1 request to `location`; `close`: the connection ends after it. */
export function http1Redirect(location: string, close: boolean): string {
  return `HTTP/1.1 308 Permanent Redirect\r\nlocation: ${location}\r\ncontent-length: 0\r\n${close ? 'connection: close\r\n' : ''}\r\n`;
}
