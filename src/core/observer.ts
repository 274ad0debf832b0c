/**
 * What a proxy reports about each finished exchange (HTTP request or L4 connection) to whoever
 * watches traffic: metrics, the access log, the dashboard. The proxies build a record only when
 * an observer is set, so an unwatched balancer pays nothing.
 */
export interface ExchangeRecord {
  listener: string;
  protocol: 'http' | 'tcp' | 'udp';
  pool: string;
  /** Server identity, or null when none was reached (503, bad request). */
  server: string | null;
  clientIp: string;
  /** HTTP only ('' for L4). */
  method: string;
  path: string;
  /** HTTP only: the query string without '?', the Host header, User-Agent, X-Request-Id. */
  query?: string;
  host?: string;
  userAgent?: string;
  requestId?: string;
  /** HTTP status sent to the client; 0 for L4 or when the client went away first. */
  status: number;
  /** Bytes sent to the client (response body and head for HTTP). */
  bytesOut: number;
  /** Bytes received from the client (request head and body for HTTP), when the front counts them. */
  bytesIn?: number;
  /** Time from the request head (or connection) to the end of the response (or connection). */
  durationMs: number;
  /** Tries beyond the first. */
  retries: number;
  /** Time of the end of the exchange (ms since epoch). */
  at: number;
  /** HTTP: why the listener's protection refused the request (rate, surge, blocked, ...), if it did. */
  refusedBy?: string | undefined;
}

export interface TrafficObserver {
  onExchange(record: ExchangeRecord): void;
}
