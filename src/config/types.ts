/**
 * The normalized configuration: every default filled in, durations in milliseconds under the same
 * key names as in the YAML, addresses parsed. docs/configuration.md documents each key.
 * schema.ts is checked against these types at compile time.
 */
import type { AlgorithmName } from '../balancing/registry.js';
import type { Address } from './address.js';

export type Protocol = 'http' | 'tcp' | 'udp' | 'dns';
/** The names of the balancing algorithms: src/balancing/registry.ts lists them. */
export type Algorithm = AlgorithmName;
export type RetryOn = 'connect-failure' | 'reset' | 'timeout' | '5xx';

export interface Config {
  admin?: AdminConfig;
  /** JSON access log, one line per request or connection; off when absent. */
  accessLog?: AccessLogConfig;
  /** ms to wait for in-flight requests and connections on SIGTERM before closing them. */
  shutdownTimeout: number;
  /** Worker processes under a supervisor ("auto": one per CPU); 1 runs no supervisor. */
  workers: number | 'auto';
  /** ms a worker may go without a heartbeat (its event loop blocked) before it is replaced. */
  workerTimeout: number;
  listeners: ListenerConfig[];
  pools: PoolConfig[];
}

export interface AdminConfig {
  listen: Address;
  /** When set, the admin API requires `Authorization: Bearer <token>`. */
  token?: string;
}

export interface AccessLogConfig {
  /** "stdout", or a file (appended to; relative to the working directory). */
  path: string;
}

export interface ListenerConfig {
  name: string;
  protocol: Protocol;
  listen: Address;
  /**
   * Default pool: used when no route matches (and always for tcp/udp). dns: the pool of records
   * that name none; '' when a dns listener has no default pool.
   */
  pool: string;
  /**
   * First match wins. http: by host, path, method, headers; tcp: by the TLS ClientHello's server
   * name (`match.sni` only; TLS passthrough). Empty for udp.
   */
  routes: RouteConfig[];
  /** Canonical CIDRs ("10.0.0.0/8", "::1/128") whose X-Forwarded-For / PROXY header is believed. */
  trustedProxies: string[];
  /** http: largest accepted request head in bytes. */
  maxHeaderSize: number;
  /** Concurrent client connections accepted; unlimited when absent. http and tcp. */
  maxConnections?: number;
  /**
   * tcp: every connection must start with a PROXY protocol header (v1 or v2), and only peers in
   * `trustedProxies` may connect. Absent: false.
   */
  acceptProxyProtocol?: boolean;
  /**
   * tcp: connections beyond `maxConnections`, or while every server is at its own
   * `maxConnections`, wait here (unread). Absent: `{ size: 1000, timeout: 5000 }`.
   */
  queue?: QueueConfig;
  /** udp: most client flows at once; datagrams from new clients are dropped beyond. Absent: 10000. */
  maxFlows?: number;
  /** dns only (required there): the zones the listener answers for, authoritatively. */
  zones?: DnsZoneConfig[];
  /** dns only: largest UDP answer in bytes (EDNS0 clients may ask less; 512 without EDNS). Absent: 1232. */
  maxUdpSize?: number;
  /** dns only: response-rate limiting per client subnet over UDP. Absent: the defaults below. */
  responseRateLimit?: DnsRateLimitConfig;
  timeouts: ListenerTimeouts;
  /** http: terminate TLS (HTTPS, and HTTP/2 by ALPN); absent: plaintext. */
  tls?: TlsConfig;
  /** http with tls: Strict-Transport-Security max-age in seconds, sent on every response; absent: none. */
  hsts?: number;
  /** http without tls: every request is answered 308 to https:// (the port of the first TLS listener). Absent: false. */
  redirectHttps?: boolean;
  /** http without tls: HTTP/2 with prior knowledge (h2c) next to HTTP/1.1. Absent: false. */
  http2?: boolean;
  /** http: most concurrent streams per HTTP/2 connection. Absent: 100. */
  maxConcurrentStreams?: number;
  /** http: rate and connection limits, size limits, allow and deny lists. Absent: none. */
  protection?: ProtectionConfig;
}

/** TLS termination on an http listener. */
export interface TlsConfig {
  /** PEM files, absolute paths (relative ones are resolved against the config file's folder). The first is the default. */
  certificates: TlsCertificateConfig[];
  /** Oldest TLS version accepted. */
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** ALPN protocols offered, in order of preference. */
  alpn: Array<'h2' | 'http/1.1'>;
  /** PEM file of the CAs that sign client certificates: when set, clients must present one (mTLS). */
  clientCa?: string;
}

export interface TlsCertificateConfig {
  /** PEM certificate (chain); SNI picks it by its subjectAltName DNS names. */
  cert: string;
  /** PEM private key of `cert`. */
  key: string;
}

/** Where a rate limit's client key comes from. */
export type RateKey = { from: 'ip' } | { from: 'header'; name: string } | { from: 'cookie'; name: string };

export interface ProtectionConfig {
  /** Requests per client key (routes may have their own). */
  rateLimit?: RateLimitConfig;
  /**
   * Per client address (http, tcp): `perClient` concurrent connections, and new connections at
   * `rate` per `per` ms (`burst` at once).
   */
  connections?: { perClient?: number; rate?: number; per: number; burst?: number };
  /** udp: datagrams per client address, `rate` per `per` ms (`burst` at once); more are dropped. */
  packets?: { rate: number; per: number; burst: number };
  /**
   * Slow clients: `header` and `idle` (ms) override the listener's `timeouts.requestHead` and
   * `timeouts.idle`; `bodyMinRate` (bytes/s): a request body arriving slower is cut with 408.
   */
  timeouts?: { header?: number; idle?: number; bodyMinRate?: number };
  /** Request limits: body bytes (413), request-target length (414), header fields (431). */
  limits?: { maxBodySize?: number; maxUrlLength?: number; maxHeaders?: number };
  /**
   * Abnormal-traffic detection: a client far over its rate limit for `sustain` windows in a row,
   * or whose answers are mostly 401/403/404, is blocked for `blockFor` ms.
   */
  detect?: { enabled: boolean; blockFor: number; window: number; sustain: number };
  /**
   * A Redis URL: rate-limit counts shared by every balancer using it (summed, fixed windows of
   * `rateLimit.per`); absent: counted in this process.
   */
  shared?: string;
  /** With `shared`: while Redis is unreachable, requests are refused (503) instead of counted locally. */
  failClosed: boolean;
  /**
   * Listener-wide surge shedding: when the request rate over the last `window` ms exceeds
   * `factor` times its baseline (a moving average with time constant `baseline` ms) and `floor`
   * requests per second, new clients get 503 while clients with the pool's sticky cookie or one
   * of `sessionCookies` are still served.
   */
  surge?: SurgeConfig;
  /** Canonical CIDRs never limited. */
  allow: string[];
  /** Canonical CIDRs refused at accept. */
  deny: string[];
}

/** Listener-wide surge shedding (see ProtectionConfig.surge). */
export interface SurgeConfig {
  enabled: boolean;
  window: number;
  baseline: number;
  factor: number;
  floor: number;
  sessionCookies: string[];
}

/** One zone a dns listener is authoritative for (SOA and NS are generated). */
export interface DnsZoneConfig {
  /** Lower-cased, without the trailing dot: "example.test". */
  name: string;
  /** ms; the TTL of answers (rounded down to whole seconds, at least 0). */
  ttl: number;
  records: DnsRecordConfig[];
}

export type DnsRecordType = 'address' | 'A' | 'AAAA' | 'SRV';

export interface DnsRecordConfig {
  /** Relative to the zone, lower-cased ("www", "_http._tcp.www"); "@" is the zone's apex. */
  name: string;
  /** The pool whose usable servers make the answers (the listener's pool when absent in YAML). */
  pool: string;
  /**
   * `address` (default): A for the IPv4 servers and AAAA for the IPv6 ones; `A` or `AAAA`: that
   * family only; `SRV`: target, port and weight of each server.
   */
  type: DnsRecordType;
  /** Most servers in one answer; absent: all usable ones. */
  answers?: number;
  /** ms; overrides the zone's ttl. */
  ttl?: number;
}

export interface DnsRateLimitConfig {
  /** Responses per `per` to one client subnet; 0 turns the limit off. */
  responses: number;
  /** ms of the window. */
  per: number;
  /** Prefix lengths that make one client subnet. */
  ipv4Prefix: number;
  ipv6Prefix: number;
}

export interface QueueConfig {
  /** Connections that may wait at once; 0 refuses at once. */
  size: number;
  /** ms a connection may wait before it is refused. */
  timeout: number;
}

export interface ListenerTimeouts {
  /** http: ms for a client to send a complete request head. */
  requestHead: number;
  /**
   * ms a connection may sit idle (http: between keep-alive requests; tcp: no bytes either way;
   * udp: a client's flow).
   */
  idle: number;
  /**
   * tcp with sni routes: ms for a client to send its complete TLS ClientHello. Absent: 5000.
   */
  clientHello?: number;
}

export interface RouteConfig {
  /** Every given condition must hold. */
  match: RouteMatch;
  pool: string;
  /** http: the rate limit of the requests this route takes, over the listener's `protection.rateLimit`. */
  rateLimit?: RateLimitConfig;
}

/** Requests per client key: `burst` at once at most, refilled at `requests` per `per` ms. */
export interface RateLimitConfig {
  requests: number;
  per: number;
  burst: number;
  key: RateKey;
}

export interface RouteMatch {
  /** Lower-cased; exact ("api.example.com") or one leading wildcard label ("*.example.com"). */
  host?: string;
  /** Starts with "/". */
  pathPrefix?: string;
  /** Upper-cased token, e.g. "GET". */
  method?: string;
  /** Header name (lower-cased) → exact value. */
  headers?: Record<string, string>;
  /**
   * tcp only: the server name (SNI) of the client's TLS ClientHello, lower-cased; exact or one
   * leading wildcard label, like `host`.
   */
  sni?: string;
}

export interface PoolConfig {
  name: string;
  algorithm: Algorithm;
  servers: ServerConfig[];
  healthCheck?: HealthCheckConfig;
  outlierDetection?: OutlierDetectionConfig;
  retries: RetriesConfig;
  sticky?: StickyConfig;
  /** ms over which a server that comes (back) up ramps from little traffic to its full weight; 0 = off. */
  slowStart: number;
  timeouts: PoolTimeouts;
  /** Idle keep-alive upstream connections kept per server. */
  maxIdlePerServer: number;
  /**
   * ms a draining (or removed) server keeps its tcp connections and udp flows before they are
   * closed; 0 = until they end. Absent: 300000 (5 minutes).
   */
  drainTimeout?: number;
  /** tcp: send a PROXY protocol header of this version to every server (absent: none). */
  sendProxyProtocol?: ProxyProtocolVersion;
  /** http: TLS to the servers (requests and health checks); absent: plain TCP. */
  tls?: PoolTlsConfig;
}

/** TLS to a pool's servers. Files are PEM, relative to the working directory. */
export interface PoolTlsConfig {
  /** Sent as SNI and checked against the certificate; absent: the server's host when a name. */
  serverName?: string;
  /** CA certificates the servers' certificates must chain to; absent: Node's root CAs. */
  ca?: string;
  /** Check the server's certificate (chain and name). Default true. */
  verify: boolean;
  /** Client certificate (mTLS), with `key`. */
  cert?: string;
  key?: string;
}

export type ProxyProtocolVersion = 'v1' | 'v2';

export interface PoolTimeouts {
  /** ms to establish an upstream connection. */
  connect: number;
  /** ms to the response head, and the longest silence while a response streams. */
  response: number;
  /** ms a pooled idle upstream keep-alive connection is kept. */
  idle: number;
}

export interface ServerConfig {
  address: Address;
  /** Identity, stable across reloads: the configured name, else `address.text`. */
  name: string;
  /** 0..256; 0 = only chosen when nothing else is eligible. */
  weight: number;
  /** Used only while no primary (non-backup) server is available. */
  backup: boolean;
  /** tcp and udp: most connections (flows) at once to this server; absent: unlimited. */
  maxConnections?: number;
  /** tcp: overrides the pool's `sendProxyProtocol` for this server; 'none' sends none. */
  sendProxyProtocol?: ProxyProtocolVersion | 'none';
}

export interface HealthCheckConfig {
  type: 'http' | 'tcp';
  /** http: request path. */
  path: string;
  /** http: request method. */
  method: string;
  /** http: inclusive range of statuses that count as healthy. */
  expectStatus: [number, number];
  /** http: the body must contain this text. */
  expectBody?: string;
  /** http: Host header to send (default: the server address). */
  host?: string;
  interval: number;
  timeout: number;
  /** Consecutive successes that bring a down server up. */
  rise: number;
  /** Consecutive failures that bring an up server down. */
  fall: number;
  /** Servers start down and must pass `rise` checks first (else they start up). */
  startDown: boolean;
}

export interface OutlierDetectionConfig {
  /** Failed requests in a row that eject a server. */
  consecutiveFailures: number;
  /** Count http 5xx responses as failures (connect errors, resets and timeouts always count). */
  on5xx: boolean;
  /** ms of the first ejection; repeated ejections last longer, up to maxEjectFor. */
  ejectFor: number;
  maxEjectFor: number;
  /** Never eject more than this percentage of a pool's servers at once. */
  maxEjectedPercent: number;
}

export interface RetriesConfig {
  /** Retries after the first try (HAProxy `retries`); 0 disables retrying. */
  attempts: number;
  on: RetryOn[];
}

export interface StickyConfig {
  type: 'cookie' | 'source';
  /** cookie: `insert` sets our own cookie; `learn` follows a cookie the application sets. */
  mode: 'insert' | 'learn';
  /** cookie: name of the cookie. */
  cookie: string;
  /** ms an affinity lives after it is created (cookie Max-Age; stick-table entry lifetime). */
  ttl?: number;
  /** ms an affinity survives without traffic. */
  idle?: number;
  /** "memory", or "redis://[user:pass@]host[:port][/db]" to share affinities between instances. */
  store: string;
  /** cookie: HMAC key that signs the cookie value. */
  secret?: string;
  /** Most affinities kept by the memory store. */
  maxEntries: number;
}
