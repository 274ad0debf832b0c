/**
 * The shape of fulcrum.yaml as zod schemas: strict objects (unknown keys are errors), defaults, and
 * the value parsers of values.ts at the leaves. The output is the normalized Config of types.ts.
 * Checks that relate several keys (duplicates, pool references, protocol-specific keys) live in
 * checks.ts, because they must run even when some other part of the file is invalid.
 */
import { z } from 'zod';
import { ALGORITHMS } from '../balancing/registry.js';
import { formatDuration } from './duration.js';
import { ValueError } from './errors.js';
import * as h from './jsonHints.js';
import { loadServerTls, serverNameValue } from './serverTls.js';
import type {
  AccessLogConfig,
  AdminConfig,
  Config,
  DnsRateLimitConfig,
  DnsRecordConfig,
  DnsZoneConfig,
  HealthCheckConfig,
  ListenerConfig,
  OutlierDetectionConfig,
  PoolConfig,
  PoolTlsConfig,
  ProtectionConfig,
  QueueConfig,
  RateKey,
  RateLimitConfig,
  RetriesConfig,
  RetryOn,
  RouteConfig,
  ServerConfig,
  StickyConfig,
  TlsConfig,
} from './types.js';
import * as v from './values.js';

/**
 * A key whose value a ValueParser checks and converts. A missing key reaches the parser as
 * undefined and is reported by the loader as `missing required key`, so wrap optional keys.
 */
function value<T>(parse: v.ValueParser<T>) {
  return (
    z
      .unknown()
      .transform((input, ctx): T => {
        if (input === undefined) {
          // No message: the loader's error map words a missing key.
          ctx.issues.push({ code: 'custom', input });
          return z.NEVER;
        }
        try {
          return parse(input);
        } catch (error) {
          if (!(error instanceof ValueError)) throw error;
          ctx.issues.push({ code: 'custom', input, message: error.message });
          return z.NEVER;
        }
      })
      // What the parser accepts, for the JSON Schema (jsonSchema.ts).
      .meta(h.hintOf(parse as v.ValueParser<unknown>))
  );
}

export const PROTOCOLS = ['http', 'tcp', 'udp', 'dns'] as const;
export { ALGORITHMS };
export const RETRY_ON = ['connect-failure', 'reset', 'timeout', '5xx'] as const;
const DEFAULT_RETRY_ON: RetryOn[] = ['connect-failure', 'reset'];

const positive = h.integer(1);

const AdminSchema = z.strictObject({
  listen: value(v.listenAddress),
  token: value(h.secret(1)).optional(),
}) satisfies z.ZodType<AdminConfig>;

const AccessLogSchema = z.strictObject({
  path: value(v.nonEmptyString),
}) satisfies z.ZodType<AccessLogConfig>;

const RouteMatchSchema = z.strictObject({
  host: value(v.hostPattern).optional(),
  pathPrefix: value(v.path).optional(),
  method: value(v.method).optional(),
  headers: z
    .record(z.string(), value(v.headerValue))
    .transform((headers, ctx) => {
      const normalized: Record<string, string> = {};
      for (const [key, text] of Object.entries(headers)) {
        try {
          const header = v.headerName(key);
          if (header in normalized) {
            throw new ValueError('each header once (names ignore case)', key);
          }
          normalized[header] = text;
        } catch (error) {
          if (!(error instanceof ValueError)) throw error;
          ctx.issues.push({ code: 'custom', input: key, path: [key], message: error.message });
        }
      }
      return normalized;
    })
    .optional(),
  sni: value(v.hostPattern).optional(),
});
// "At least one condition" is checked in checks.ts, on the raw mapping: here a match holding
// only a misspelt key would be reported twice.

/** `ip`, `header:NAME` or `cookie:NAME`. */
function rateKey(input: unknown): RateKey {
  if (input === 'ip') return { from: 'ip' };
  if (typeof input === 'string') {
    const m = /^(header|cookie):([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(input);
    if (m !== null) {
      return m[1] === 'header'
        ? { from: 'header', name: m[2]!.toLowerCase() }
        : { from: 'cookie', name: m[2]! };
    }
  }
  throw new ValueError('ip, header:NAME or cookie:NAME', input);
}

/** `workers`: "auto" (one per CPU) or a count of worker processes. */
function workerCount(input: unknown): number | 'auto' {
  if (input === 'auto') return 'auto';
  if (typeof input === 'number' && Number.isInteger(input) && input >= 1 && input <= 256) return input;
  throw new ValueError('"auto" or an integer from 1 to 256', input);
}

const WORKERS = h.hinted(workerCount, {
  type: ['integer', 'string'],
  description: '"auto" (one worker per CPU) or the number of worker processes (1: no supervisor)',
});

const RATE_KEY = h.hinted(rateKey, {
  type: 'string',
  pattern: "^(ip|(header|cookie):[!#$%&'*+.^_`|~0-9A-Za-z-]+)$",
  description: 'ip, header:NAME or cookie:NAME',
});

/** `protection.rateLimit`, and a route's own (http). */
const RateLimitSchema = z
  .strictObject({
    requests: value(positive),
    per: value(h.duration(1)),
    burst: value(positive).optional(),
    key: value(RATE_KEY).default({ from: 'ip' }),
  })
  .transform((r): RateLimitConfig => ({ ...r, burst: r.burst ?? r.requests }));

const RouteSchema = z.strictObject({
  match: RouteMatchSchema,
  pool: value(v.nonEmptyString),
  rateLimit: RateLimitSchema.optional(),
}) satisfies z.ZodType<RouteConfig>;

const QueueSchema = z.strictObject({
  size: value(h.integer(0)).default(1000),
  timeout: value(h.duration(1)).default(5000),
}) satisfies z.ZodType<QueueConfig>;

const TlsSchema = z.strictObject({
  certificates: z
    .array(z.strictObject({ cert: value(v.nonEmptyString), key: value(v.nonEmptyString) }))
    .min(1, 'expected at least one certificate, got an empty list'),
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  alpn: z
    .array(z.enum(['h2', 'http/1.1']))
    .min(1, 'expected at least one protocol, got an empty list')
    .default(['h2', 'http/1.1'])
    .transform((alpn) => [...new Set(alpn)]),
  clientCa: value(v.nonEmptyString).optional(),
}) satisfies z.ZodType<TlsConfig>;
const ProtectionSchema = z
  .strictObject({
    rateLimit: RateLimitSchema.optional(),
    connections: z
      .strictObject({
        perClient: value(positive).optional(),
        rate: value(positive).optional(),
        per: value(h.duration(1)).default(1000),
        burst: value(positive).optional(),
      })
      .transform((c) => ({ ...c, burst: c.burst ?? c.rate }))
      .optional(),
    packets: z
      .strictObject({
        rate: value(positive),
        per: value(h.duration(1)).default(1000),
        burst: value(positive).optional(),
      })
      .transform((p) => ({ ...p, burst: p.burst ?? p.rate }))
      .optional(),
    timeouts: z
      .strictObject({
        header: value(h.duration(1)).optional(),
        idle: value(h.duration(1)).optional(),
        bodyMinRate: value(v.byteRate).optional(),
      })
      .optional(),
    limits: z
      .strictObject({
        maxBodySize: value(h.byteSize(0)).optional(),
        maxUrlLength: value(h.byteSize(1)).optional(),
        maxHeaders: value(h.integer(1, 10_000)).optional(),
      })
      .optional(),
    detect: z
      .strictObject({
        enabled: value(v.boolean).default(true),
        blockFor: value(h.duration(1)).default(600_000),
        window: value(h.duration(100)).default(10_000),
        sustain: value(h.integer(1, 100)).default(2),
      })
      .optional(),
    surge: z
      .strictObject({
        enabled: value(v.boolean).default(true),
        window: value(h.duration(1000, 600_000)).default(5000),
        baseline: value(h.duration(1000)).default(60_000),
        factor: value(h.integer(2, 1000)).default(5),
        floor: value(h.integer(0)).default(50),
        sessionCookies: z.array(value(v.cookieName)).default([]),
      })
      .optional(),
    shared: value(v.redisUrl).optional(),
    failClosed: value(v.boolean).default(false),
    allow: z.array(value(v.cidr)).default([]),
    deny: z.array(value(v.cidr)).default([]),
  })
  .transform((p): ProtectionConfig => p);

/** The record's pool is optional in YAML (the listener's pool); the listener transform fills it in. */
const DnsRecordSchema = z.strictObject({
  name: value(v.dnsRecordName),
  pool: value(v.nonEmptyString).optional(),
  type: z.enum(['address', 'A', 'AAAA', 'SRV']).default('address'),
  answers: value(positive).optional(),
  ttl: value(h.duration(0, 2_147_483_647_000)).optional(),
});

const DnsZoneSchema = z.strictObject({
  name: value(v.dnsZoneName),
  ttl: value(h.duration(0, 2_147_483_647_000)).default(30_000),
  records: z.array(DnsRecordSchema).default([]),
});

const DnsRateLimitSchema = z.strictObject({
  responses: value(h.integer(0)).default(100),
  per: value(h.duration(1)).default(1000),
  ipv4Prefix: value(h.integer(0, 32)).default(24),
  ipv6Prefix: value(h.integer(0, 128)).default(56),
}) satisfies z.ZodType<DnsRateLimitConfig>;

const ListenerSchema = z
  .strictObject({
    name: value(v.name),
    protocol: z.enum(PROTOCOLS).default('http'),
    listen: value(v.listenAddress),
    // Required, except for dns (checked in the transform).
    pool: value(v.nonEmptyString).optional(),
    routes: z.array(RouteSchema).default([]),
    trustedProxies: z.array(value(v.cidr)).default([]),
    maxHeaderSize: value(h.integer(1024, 1024 * 1024)).default(16384),
    maxConnections: value(positive).optional(),
    acceptProxyProtocol: value(v.boolean).optional(),
    queue: QueueSchema.optional(),
    maxFlows: value(positive).optional(),
    protection: ProtectionSchema.optional(),
    zones: z.array(DnsZoneSchema).optional(),
    maxUdpSize: value(h.integer(512, 65535)).optional(),
    responseRateLimit: DnsRateLimitSchema.optional(),
    timeouts: z
      .strictObject({
        requestHead: value(h.duration(1)).default(10_000),
        idle: value(h.duration(1)).default(60_000),
        clientHello: value(h.duration(1)).optional(),
      })
      .prefault({}),
    tls: TlsSchema.optional(),
    hsts: value(h.integer(0)).optional(),
    redirectHttps: value(v.boolean).optional(),
    http2: value(v.boolean).optional(),
    maxConcurrentStreams: value(h.integer(1, 1_000_000)).optional(),
  })
  .transform((listener, ctx): ListenerConfig => {
    // The L4 keys, by protocol (the http-only keys are checked in checks.ts).
    const { protocol } = listener;
    const only = (key: keyof typeof listener, protocols: string, allowed: boolean, hint = '') => {
      if (listener[key] === undefined || allowed) return;
      ctx.issues.push({
        code: 'custom',
        input: listener[key],
        path: [key],
        message: `only allowed when protocol is ${protocols}, got protocol "${protocol}"${hint}`,
      });
    };
    only('acceptProxyProtocol', 'tcp', protocol === 'tcp');
    only('queue', 'tcp', protocol === 'tcp');
    only('maxFlows', 'udp', protocol === 'udp');
    only(
      'maxConnections',
      'http or tcp',
      protocol !== 'udp' && protocol !== 'dns',
      protocol === 'udp' ? ' (a udp listener limits flows with maxFlows)' : '',
    );
    only('zones', 'dns', protocol === 'dns');
    only('maxUdpSize', 'dns', protocol === 'dns');
    only('responseRateLimit', 'dns', protocol === 'dns');
    for (const key of ['tls', 'hsts', 'redirectHttps', 'http2', 'maxConcurrentStreams'] as const) {
      only(key, 'http', protocol === 'http');
    }
    if (protocol === 'http') {
      const tls = listener.tls !== undefined;
      const needs = (key: keyof typeof listener, what: string) => {
        if (listener[key] === undefined) return;
        ctx.issues.push({ code: 'custom', input: listener[key], path: [key], message: what });
      };
      if (!tls) needs('hsts', 'only allowed on a listener with tls (browsers ignore it over plain HTTP)');
      if (tls) needs('redirectHttps', 'only allowed on a listener without tls (it redirects to a TLS one)');
      if (tls) needs('http2', 'only allowed on a listener without tls (with tls, tls.alpn offers h2)');
    }
    only('protection', 'http, tcp or udp', protocol !== 'dns', ' (dns has responseRateLimit)');
    // The L4 listeners take the protection keys that make sense without HTTP.
    const l4Keys: Record<string, readonly string[]> = {
      tcp: ['connections', 'allow', 'deny'],
      udp: ['packets', 'allow', 'deny'],
    };
    const allowed = l4Keys[protocol];
    const given = listener.protection as Record<string, unknown> | undefined;
    for (const key of Object.keys(given ?? {})) {
      const raw = given![key];
      // Defaults (allow, deny, failClosed) are filled in for every protocol: only keys set count.
      if (raw === undefined || (Array.isArray(raw) && raw.length === 0) || raw === false) continue;
      const ok = allowed === undefined ? key !== 'packets' : allowed.includes(key);
      if (ok) continue;
      ctx.issues.push({
        code: 'custom',
        input: raw,
        path: ['protection', key],
        message:
          key === 'packets'
            ? `only allowed when protocol is udp, got protocol "${protocol}"`
            : `only allowed when protocol is http, got protocol "${protocol}" (a ${protocol} listener takes ${allowed?.join(', ')})`,
      });
    }
    if (listener.acceptProxyProtocol === true && listener.trustedProxies.length === 0) {
      ctx.issues.push({
        code: 'custom',
        input: listener.acceptProxyProtocol,
        path: ['acceptProxyProtocol'],
        message:
          'expected trustedProxies to list the balancers allowed to send PROXY headers, got none (anyone could claim any address)',
      });
    }
    // pool: required but for dns, whose records may each name theirs.
    const { pool, zones, ...rest } = listener;
    if (protocol !== 'dns') {
      if (pool === undefined) ctx.issues.push({ code: 'custom', input: undefined, path: ['pool'] });
      return { ...rest, pool: pool ?? '' };
    }
    if (zones === undefined) {
      ctx.issues.push({ code: 'custom', input: undefined, path: ['zones'] });
      return { ...rest, pool: pool ?? '' };
    }
    return { ...rest, pool: pool ?? '', zones: dnsZones(zones, pool, ctx) };
  }) satisfies z.ZodType<ListenerConfig>;

/**
 * A dns listener's zones, normalized: every record gets a pool (its own, else the listener's);
 * a zone may appear once, and a name once per type in its zone.
 */
function dnsZones(
  zones: z.output<typeof DnsZoneSchema>[],
  listenerPool: string | undefined,
  ctx: z.core.$RefinementCtx<unknown>,
): DnsZoneConfig[] {
  const seenZones = new Set<string>();
  return zones.map((zone, i) => {
    if (seenZones.has(zone.name)) {
      ctx.issues.push({
        code: 'custom',
        input: zone.name,
        path: ['zones', i, 'name'],
        message: `expected a zone not already listed, got ${JSON.stringify(zone.name)}`,
      });
    }
    seenZones.add(zone.name);
    const seen = new Set<string>();
    const records = zone.records.map((record, j): DnsRecordConfig => {
      const at = ['zones', i, 'records', j];
      const key = `${record.name} ${record.type === 'SRV' ? 'SRV' : 'address'}`;
      if (seen.has(key)) {
        ctx.issues.push({
          code: 'custom',
          input: record.name,
          path: [...at, 'name'],
          message: `expected a name not already given a record of this type in the zone, got ${JSON.stringify(record.name)}`,
        });
      }
      seen.add(key);
      const pool = record.pool ?? listenerPool;
      if (pool === undefined) {
        ctx.issues.push({
          code: 'custom',
          input: undefined,
          path: [...at, 'pool'],
          message: 'missing required key "pool" (the listener has no pool to default to)',
        });
      }
      const out: DnsRecordConfig = { name: record.name, pool: pool ?? '', type: record.type };
      if (record.answers !== undefined) out.answers = record.answers;
      if (record.ttl !== undefined) out.ttl = record.ttl;
      return out;
    });
    return { name: zone.name, ttl: zone.ttl, records };
  });
}

const ServerSchema = z
  .strictObject({
    address: value(v.serverAddress),
    name: value(v.serverName).optional(),
    weight: value(h.integer(0, 256)).default(1),
    backup: value(v.boolean).default(false),
    maxConnections: value(positive).optional(),
    sendProxyProtocol: z.enum(['v1', 'v2', 'none']).optional(),
  })
  .transform((server): ServerConfig => {
    const out: ServerConfig = {
      address: server.address,
      name: server.name ?? server.address.text,
      weight: server.weight,
      backup: server.backup,
    };
    // The L4 keys appear only when given, like every optional key.
    if (server.maxConnections !== undefined) out.maxConnections = server.maxConnections;
    if (server.sendProxyProtocol !== undefined) out.sendProxyProtocol = server.sendProxyProtocol;
    return out;
  });

const HealthCheckSchema = z.strictObject({
  type: z.enum(['http', 'tcp']),
  path: value(v.path).default('/health'),
  method: value(v.method).default('GET'),
  expectStatus: value(v.statusRange).default([200, 399]),
  expectBody: value(v.nonEmptyString).optional(),
  host: value(v.hostHeader).optional(),
  interval: value(h.duration(1)).default(2000),
  timeout: value(h.duration(1)).default(1000),
  rise: value(positive).default(2),
  fall: value(positive).default(3),
  startDown: value(v.boolean).default(false),
}) satisfies z.ZodType<HealthCheckConfig>;

const DEFAULT_MAX_EJECT_FOR = 300_000;

const OutlierDetectionSchema = z
  .strictObject({
    consecutiveFailures: value(positive).default(5),
    on5xx: value(v.boolean).default(false),
    ejectFor: value(h.duration(1)).default(30_000),
    maxEjectFor: value(h.duration(1)).optional(),
    maxEjectedPercent: value(h.integer(0, 100)).default(50),
  })
  .transform((outlier, ctx): OutlierDetectionConfig => {
    const { maxEjectFor } = outlier;
    if (maxEjectFor !== undefined && maxEjectFor < outlier.ejectFor) {
      ctx.issues.push({
        code: 'custom',
        input: maxEjectFor,
        path: ['maxEjectFor'],
        message: `expected at least ejectFor (${formatDuration(outlier.ejectFor)}), got ${formatDuration(maxEjectFor)}`,
      });
    }
    // An ejectFor above the default cap raises the cap rather than being an error nobody wrote.
    return { ...outlier, maxEjectFor: maxEjectFor ?? Math.max(DEFAULT_MAX_EJECT_FOR, outlier.ejectFor) };
  });

const RetriesSchema = z.strictObject({
  attempts: value(h.integer(0, 100)).default(1),
  on: z
    .array(z.enum(RETRY_ON))
    .default(DEFAULT_RETRY_ON)
    .transform((on) => [...new Set(on)]),
}) satisfies z.ZodType<RetriesConfig>;

const StickySchema = z.strictObject({
  type: z.enum(['cookie', 'source']),
  mode: z.enum(['insert', 'learn']).default('insert'),
  cookie: value(v.cookieName).default('fulcrum_srv'),
  // Not timers (cookie Max-Age, store expiry), so longer than the 24-day timer cap is fine.
  ttl: value(h.duration(1, Number.MAX_SAFE_INTEGER)).optional(),
  idle: value(h.duration(1, Number.MAX_SAFE_INTEGER)).optional(),
  store: value(v.store).default('memory'),
  secret: value(h.secret(16)).optional(),
  maxEntries: value(positive).default(100_000),
}) satisfies z.ZodType<StickyConfig>;

const PoolTlsSchema = z
  .strictObject({
    serverName: value(serverNameValue).optional(),
    ca: value(v.nonEmptyString).optional(),
    verify: value(v.boolean).default(true),
    cert: value(v.nonEmptyString).optional(),
    key: value(v.nonEmptyString).optional(),
  })
  .transform((tls, ctx): PoolTlsConfig => {
    loadServerTls(tls, (key, message) =>
      ctx.issues.push({ code: 'custom', input: tls[key], path: [key], message }),
    );
    return tls;
  });

const PoolSchema = z.strictObject({
  name: value(v.name),
  algorithm: z.enum(ALGORITHMS).default('round-robin'),
  servers: z.array(ServerSchema).min(1, 'expected at least one server, got an empty list'),
  healthCheck: HealthCheckSchema.optional(),
  outlierDetection: OutlierDetectionSchema.optional(),
  retries: RetriesSchema.prefault({}),
  sticky: StickySchema.optional(),
  slowStart: value(h.duration(0)).default(0),
  timeouts: z
    .strictObject({
      connect: value(h.duration(1)).default(5000),
      response: value(h.duration(1)).default(60_000),
      idle: value(h.duration(1)).default(30_000),
    })
    .prefault({}),
  maxIdlePerServer: value(h.integer(0)).default(64),
  drainTimeout: value(h.duration(0)).optional(),
  sendProxyProtocol: z.enum(['v1', 'v2']).optional(),
  tls: PoolTlsSchema.optional(),
}) satisfies z.ZodType<PoolConfig>;

export const ConfigSchema = z
  .strictObject({
    admin: AdminSchema.optional(),
    accessLog: AccessLogSchema.optional(),
    shutdownTimeout: value(h.duration(0)).default(30_000),
    workers: value(WORKERS).default(1),
    workerTimeout: value(h.duration(100)).default(5000),
    listeners: z.array(ListenerSchema).min(1, 'expected at least one listener, got an empty list'),
    pools: z.array(PoolSchema).min(1, 'expected at least one pool, got an empty list'),
  })
  .transform((config, ctx): Config => {
    checkL4PoolKeys(config, ctx);
    checkRedirectTarget(config, ctx);
    return config;
  }) satisfies z.ZodType<Config>;

/** `redirectHttps` sends clients to the first http listener with tls: there must be one. */
function checkRedirectTarget(config: Config, ctx: z.core.$RefinementCtx<Config>): void {
  const target = config.listeners.some((l) => l.protocol === 'http' && l.tls !== undefined);
  config.listeners.forEach((l, i) => {
    if (l.redirectHttps === true && !target) {
      ctx.issues.push({
        code: 'custom',
        input: true,
        path: ['listeners', i, 'redirectHttps'],
        message: 'expected an http listener with tls to redirect to, got none',
      });
    }
  });
}

/**
 * Pool and server keys that only the L4 listeners apply: a PROXY header toward servers only
 * makes sense on tcp connections (http upstream connections are shared by many clients, which
 * the PROXY protocol forbids), and per-server maxConnections is enforced by tcp and udp
 * listeners only. Rejected rather than silently ignored when a listener of another protocol
 * uses the pool.
 */
function checkL4PoolKeys(config: Config, ctx: z.core.$RefinementCtx<Config>): void {
  const users = new Map<string, ListenerConfig[]>();
  const use = (pool: string, listener: ListenerConfig) => {
    const list = users.get(pool) ?? [];
    if (!list.includes(listener)) list.push(listener);
    users.set(pool, list);
  };
  for (const l of config.listeners) {
    use(l.pool, l);
    for (const r of l.routes) use(r.pool, l);
  }
  const complain = (
    path: (string | number)[],
    input: unknown,
    allowed: string,
    pool: string,
    l: ListenerConfig,
  ) => {
    ctx.issues.push({
      code: 'custom',
      input,
      path,
      message: `only allowed in pools that only ${allowed} listeners use, got pool "${pool}" used by ${l.protocol} listener "${l.name}"`,
    });
  };
  config.pools.forEach((pool, i) => {
    const listeners = users.get(pool.name) ?? [];
    const notTcp = listeners.find((l) => l.protocol !== 'tcp');
    const http = listeners.find((l) => l.protocol === 'http');
    const notHttp = listeners.find((l) => l.protocol !== 'http');
    if (pool.tls !== undefined && notHttp !== undefined) {
      // At L4 the client's own TLS goes through untouched (sni routes): TLS of ours around it
      // would be a second layer no server expects.
      complain(['pools', i, 'tls'], pool.tls, 'http', pool.name, notHttp);
    }
    if (pool.sendProxyProtocol !== undefined && notTcp !== undefined) {
      complain(['pools', i, 'sendProxyProtocol'], pool.sendProxyProtocol, 'tcp', pool.name, notTcp);
    }
    pool.servers.forEach((server, j) => {
      const proxy = server.sendProxyProtocol;
      if (proxy !== undefined && proxy !== 'none' && notTcp !== undefined) {
        complain(['pools', i, 'servers', j, 'sendProxyProtocol'], proxy, 'tcp', pool.name, notTcp);
      }
      if (server.maxConnections !== undefined && http !== undefined) {
        complain(
          ['pools', i, 'servers', j, 'maxConnections'],
          server.maxConnections,
          'tcp or udp',
          pool.name,
          http,
        );
      }
    });
  });
}
