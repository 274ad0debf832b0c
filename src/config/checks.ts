/**
 * Checks that relate several keys: unique names, pool references, unique listen addresses, unique
 * servers in a pool, keys that only make sense for one protocol or type, and the admin token that
 * an admin address off loopback requires. They read the raw
 * YAML data defensively (anything may be missing or mistyped there; the schema reports that) so
 * that they run even when other parts of the file are invalid, and all problems come out at once.
 */
import { type Address, isLoopback, parseAddress } from './address.js';
import { describeValue, formatPath, type PathProblem } from './errors.js';

type Path = (string | number)[];
type Mapping = Record<string, unknown>;

const HTTP_ONLY_LISTENER_KEYS = ['maxHeaderSize'];
const HTTP_ONLY_HEALTH_KEYS = ['path', 'method', 'expectStatus', 'expectBody', 'host'];
const COOKIE_ONLY_STICKY_KEYS = ['mode', 'cookie', 'secret'];
const MATCH_KEYS = ['host', 'pathPrefix', 'method', 'headers'];
/** The one route condition of a tcp listener: TLS passthrough by the ClientHello's server name. */
const TCP_MATCH_KEYS = ['sni'];

export function checkConfig(raw: unknown): PathProblem[] {
  const problems: PathProblem[] = [];
  if (!isMapping(raw)) return problems;
  const listeners = entries(raw.listeners, ['listeners']);
  const pools = entries(raw.pools, ['pools']);

  uniqueNames(listeners, 'listener', problems);
  uniqueNames(pools, 'pool', problems);
  const poolNames = [...new Set(pools.map(([pool]) => pool.name).filter((name) => typeof name === 'string'))];
  const cookiePools = new Set(
    pools
      .filter(([pool]) => isMapping(pool.sticky) && pool.sticky.type === 'cookie')
      .map(([pool]) => pool.name),
  );

  for (const [listener, at] of listeners) {
    const protocol = listener.protocol ?? 'http';
    // A dns listener may go without a default pool (its records name theirs).
    if (protocol !== 'dns' || listener.pool !== undefined) {
      checkPoolReference(listener.pool, [...at, 'pool'], poolNames, problems);
    }
    if (protocol === 'dns') {
      for (const [zone, zoneAt] of entries(listener.zones, [...at, 'zones'])) {
        for (const [record, recordAt] of entries(zone.records, [...zoneAt, 'records'])) {
          if (record.pool !== undefined)
            checkPoolReference(record.pool, [...recordAt, 'pool'], poolNames, problems);
        }
      }
    }
    const routes = entries(listener.routes, [...at, 'routes']);
    if (protocol === 'tcp' || protocol === 'udp' || protocol === 'dns') {
      const notHttp = `protocol is http, got protocol "${protocol}"`;
      onlyFor(listener, at, HTTP_ONLY_LISTENER_KEYS, notHttp, problems);
      if (protocol !== 'tcp') {
        onlyFor(listener, at, ['routes'], `protocol is http or tcp, got protocol "${protocol}"`, problems);
      }
      if (isMapping(listener.timeouts)) {
        onlyFor(listener.timeouts, [...at, 'timeouts'], ['requestHead'], notHttp, problems);
      }
      const sticky: [unknown, Path][] =
        protocol === 'dns'
          ? []
          : [
              [listener.pool, [...at, 'pool']],
              ...routes.map(([r, rAt]): [unknown, Path] => [r.pool, [...rAt, 'pool']]),
            ];
      for (const [pool, poolAt] of sticky) {
        if (!cookiePools.has(pool)) continue;
        problems.push({
          path: poolAt,
          message: `expected a pool without cookie stickiness (a ${protocol} listener cannot set cookies), got ${describeValue(pool)}`,
        });
      }
    }
    if (protocol !== 'tcp' && isMapping(listener.timeouts)) {
      onlyFor(
        listener.timeouts,
        [...at, 'timeouts'],
        ['clientHello'],
        `protocol is tcp, got protocol "${protocol}"`,
        problems,
      );
    }
    const keys = protocol === 'tcp' ? TCP_MATCH_KEYS : MATCH_KEYS;
    for (const [route, routeAt] of routes) {
      checkPoolReference(route.pool, [...routeAt, 'pool'], poolNames, problems);
      // udp and dns: the routes key itself is refused above.
      if (!isMapping(route.match) || protocol === 'udp' || protocol === 'dns') continue;
      if (protocol === 'tcp' && isMapping(route) && route.rateLimit !== undefined) {
        problems.push({
          path: [...routeAt, 'rateLimit'],
          message: 'only allowed when protocol is http, got protocol "tcp"',
        });
      }
      if (protocol === 'tcp') {
        onlyFor(
          route.match,
          [...routeAt, 'match'],
          MATCH_KEYS,
          'protocol is http, got protocol "tcp" (tcp routes match sni)',
          problems,
        );
      } else {
        onlyFor(
          route.match,
          [...routeAt, 'match'],
          TCP_MATCH_KEYS,
          `protocol is tcp, got protocol "${protocol}"`,
          problems,
        );
      }
      if (Object.keys(route.match).length === 0) {
        const expected = keys.length === 1 ? keys[0] : `at least one of ${keys.join(', ')}`;
        problems.push({ path: [...routeAt, 'match'], message: `expected ${expected}, got an empty mapping` });
      }
    }
  }
  uniqueListenAddresses(raw, listeners, problems);
  if (isMapping(raw.admin)) {
    const address = listenAddress(raw.admin.listen);
    const problem = address && adminTokenProblem(address, raw.admin.token);
    if (problem) problems.push(problem);
  }

  for (const [pool, at] of pools) {
    uniqueServers(entries(pool.servers, [...at, 'servers']), problems);
    const health = pool.healthCheck;
    if (isMapping(health) && health.type === 'tcp') {
      onlyFor(
        health,
        [...at, 'healthCheck'],
        HTTP_ONLY_HEALTH_KEYS,
        'type is http, got type "tcp"',
        problems,
      );
    }
    const sticky = pool.sticky;
    if (isMapping(sticky) && sticky.type === 'source') {
      onlyFor(
        sticky,
        [...at, 'sticky'],
        COOKIE_ONLY_STICKY_KEYS,
        'type is cookie, got type "source"',
        problems,
      );
    }
    if (isMapping(sticky) && sticky.type === 'cookie' && sticky.mode === 'learn' && !('cookie' in sticky)) {
      problems.push({
        path: [...at, 'sticky'],
        message:
          'missing required key "cookie" (mode learn follows a cookie the application sets, e.g. JSESSIONID)',
      });
    }
  }
  return problems;
}

/**
 * The admin API off loopback needs a bearer token: anyone who can reach the address could drain
 * every server otherwise. The one rule for the config file and for an embedder's `startAdmin`.
 */
export function adminTokenProblem(listen: Address, token: unknown): PathProblem | undefined {
  if (token !== undefined || isLoopback(listen.host)) return undefined;
  return {
    path: ['admin', 'token'],
    message: `expected a bearer token, required because admin.listen ${describeValue(listen.text)} is not a loopback address, got nothing`,
  };
}

function checkPoolReference(name: unknown, at: Path, poolNames: unknown[], problems: PathProblem[]): void {
  // Without any valid pool name the schema already reports the pools; a list "()" would be noise.
  if (typeof name !== 'string' || poolNames.length === 0 || poolNames.includes(name)) return;
  problems.push({
    path: at,
    message: `expected the name of a pool (${poolNames.join(', ')}), got ${describeValue(name)}`,
  });
}

function uniqueNames(items: [Mapping, Path][], kind: string, problems: PathProblem[]): void {
  const seen = new Map<string, Path>();
  for (const [item, at] of items) {
    if (typeof item.name !== 'string') continue;
    const first = seen.get(item.name);
    if (first) {
      problems.push({
        path: [...at, 'name'],
        message: `expected a unique ${kind} name, got ${describeValue(item.name)} (already used by ${formatPath(first)})`,
      });
    } else {
      seen.set(item.name, at);
    }
  }
}

/** A server's identity is its name, else its address; two servers of a pool may not share one. */
function uniqueServers(servers: [Mapping, Path][], problems: PathProblem[]): void {
  const seen = new Map<string, Path>();
  for (const [server, at] of servers) {
    const named = typeof server.name === 'string';
    const identity = named ? (server.name as string) : addressText(server.address);
    if (identity === undefined) continue;
    const first = seen.get(identity);
    if (!first) {
      seen.set(identity, at);
      continue;
    }
    const hint = named ? '' : '; give each a name to have both';
    problems.push({
      path: [...at, named ? 'name' : 'address'],
      message: `expected a server not already in the pool, got ${describeValue(identity)} (already used by ${formatPath(first)}${hint})`,
    });
  }
}

interface Bound {
  address: Address;
  /** dns binds both. */
  transport: 'tcp' | 'udp' | 'both';
  at: Path;
}

/** Two sockets of the same transport cannot bind one port; a wildcard host overlaps every host. */
function uniqueListenAddresses(raw: Mapping, listeners: [Mapping, Path][], problems: PathProblem[]): void {
  const candidates: Bound[] = [];
  if (isMapping(raw.admin)) {
    const address = listenAddress(raw.admin.listen);
    if (address) candidates.push({ address, transport: 'tcp', at: ['admin'] });
  }
  for (const [listener, at] of listeners) {
    const address = listenAddress(listener.listen);
    const transport = listener.protocol === 'udp' ? 'udp' : listener.protocol === 'dns' ? 'both' : 'tcp';
    if (address) candidates.push({ address, transport, at });
  }
  const bound: Bound[] = [];
  for (const candidate of candidates) {
    const clash = bound.find((other) => clashes(other, candidate));
    if (clash) {
      problems.push({
        path: [...candidate.at, 'listen'],
        message: `expected an address no other listener uses, got ${describeValue(candidate.address.text)} (already used by ${formatPath(clash.at)})`,
      });
    } else {
      bound.push(candidate);
    }
  }
}

function clashes(a: Bound, b: Bound): boolean {
  const sameTransport = a.transport === b.transport || a.transport === 'both' || b.transport === 'both';
  if (!sameTransport || a.address.port !== b.address.port || a.address.port === 0) return false;
  return (
    a.address.host === b.address.host ||
    covers(a.address.host, b.address.host) ||
    covers(b.address.host, a.address.host)
  );
}

/** "::" binds every address (dual stack); "0.0.0.0" every IPv4 one (a host name may be IPv4). */
function covers(wildcard: string, host: string): boolean {
  return wildcard === '::' || (wildcard === '0.0.0.0' && !host.includes(':'));
}

function onlyFor(item: Mapping, at: Path, keys: string[], condition: string, problems: PathProblem[]): void {
  for (const key of keys) {
    if (key in item)
      problems.push({ path: [...at, key], message: `only allowed when ${condition}`, anchor: [...at, key] });
  }
}

function listenAddress(text: unknown): Address | undefined {
  try {
    return typeof text === 'string' ? parseAddress(text, { allowPortZero: true }) : undefined;
  } catch {
    return undefined;
  }
}

function addressText(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    return parseAddress(text).text;
  } catch {
    return text;
  }
}

/** The mappings of a list, each with its path; anything else is skipped (the schema reports it). */
function entries(list: unknown, at: Path): [Mapping, Path][] {
  if (!Array.isArray(list)) return [];
  const found: [Mapping, Path][] = [];
  list.forEach((item, index) => {
    if (isMapping(item)) found.push([item, [...at, index]]);
  });
  return found;
}

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
