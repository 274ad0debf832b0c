/**
 * Sessions replicated between the backend servers themselves, with no store to run: Tomcat's
 * session clustering, as a `SessionStore` (and express-session `Store`) like the others.
 *
 * - `all-to-all` (Tomcat's DeltaManager): every change goes to every node, every node holds every
 *   session. Reads are always local. Memory and traffic grow with the number of nodes.
 * - `primary-backup` (Tomcat's BackupManager): the node that writes a session is its primary and
 *   sends the value to one backup; the others get only the id and where its primary and backup
 *   are. A read on such a node fetches the value (primary first, then backup) and makes this node
 *   the new primary. When a primary dies its backup promotes itself and picks a new backup; when a
 *   backup dies the primary picks a new one; entries left with no copy are dropped and counted.
 *
 * Versions: every write carries (version, origin node); a node applies a change only if it is
 * newer, so concurrent writes to one session on two nodes converge everywhere on the same one,
 * the last writer by wall clock (ties broken by node id). Expiry is an absolute time carried with
 * every change, so it is the same on all nodes. Destroys leave a tombstone for a while so a
 * delayed older write cannot bring a session back.
 */
import { BASE_STORE_OPTIONS, BaseStore, type BaseStoreOptions } from '../baseStore.js';
import { checkOptions } from '../options.js';
import { type Frame, type FrameHeader, FrameType } from './frames.js';
import { type MemberState, Membership, splitAddress } from './membership.js';
import type { PeerConnection } from './peerConnection.js';

export type ReplicationMode = 'all-to-all' | 'primary-backup';

export interface ReplicatedStoreOptions extends BaseStoreOptions {
  /** Default `all-to-all`. Every node of a cluster must use the same mode. */
  mode?: ReplicationMode;
  /** `host:port` this node listens on for its peers; also its id, so it must be what they dial. */
  listen: string;
  /** Other nodes, `host:port` each (an array or a comma-separated string). */
  peers?: readonly string[] | string;
  /** Shared by every node; a peer that cannot prove it knows it is refused. */
  secret: string;
  /** Wait for the replicas' acknowledgement before a write resolves (default false: asynchronous). */
  sync?: boolean;
  /** Ping period (default 500 ms). */
  heartbeatMs?: number;
  /** Heartbeats missed before a member is re-checked and, if silent still, declared gone (default 3). */
  missedHeartbeats?: number;
  /** Bound on a fetch, an acknowledgement or a re-check ping (default 1000 ms). */
  requestTimeoutMs?: number;
  /**
   * How long a member learned at run time (through another member, or because it connected),
   * not one of `peers`, may stay gone or unreachable before this node forgets it and stops
   * dialing it (default 600 000 ms, 10 minutes; `Infinity`: never). Static peers are redialed
   * forever; a forgotten node that comes back and connects is accepted as a new member.
   */
  forgetAfterMs?: number;
  /** Longest wait for the peers at start before serving anyway (default 5000 ms). */
  joinTimeoutMs?: number;
  /** How long a destroyed session's tombstone is kept (default 300 s). */
  tombstoneSeconds?: number;
  /** How often expired sessions and tombstones are swept (default 30 s). */
  sweepIntervalMs?: number;
}

interface Entry {
  v: number;
  /** The node that wrote this version. */
  o: string;
  /** Absolute expiry, ms since the epoch. */
  exp: number;
  /** Primary and backup (primary-backup mode; in all-to-all `p` is the writer and `b` is empty). */
  p: string;
  b: string;
  /** The serialized session; undefined on nodes holding only the id, and in tombstones. */
  text: string | undefined;
  dead: boolean;
}

interface OwnOptions {
  /** Same value, new placement (a takeover, a promotion, a new backup): see #nextVersion. */
  placementOnly?: boolean;
  /** The version taken over, whose primary and backup hold the value already. */
  unchanged?: Entry;
  /** Backups that did not acknowledge this write (sync mode). */
  failed?: Set<string>;
}

export interface ClusterMemberStats {
  id: string;
  state: MemberState;
}

export interface ReplicatedStoreStats {
  node: string;
  mode: ReplicationMode;
  members: ClusterMemberStats[];
  /** Live sessions known here, with or without their value. */
  sessions: number;
  /** Sessions whose value this node holds. */
  values: number;
  /** Sessions of which this node holds only the id (primary-backup). */
  idOnly: number;
  /** Bytes of session values held here. */
  valueBytes: number;
  tombstones: number;
  bytesSent: number;
  bytesReceived: number;
  framesSent: number;
  framesReceived: number;
  /** Reads that had to ask another node for the value. */
  remoteFetches: number;
  /** Sessions dropped because no copy of them survived. */
  lost: number;
  /** Sessions this node took over as primary after their primary died. */
  promoted: number;
  /** Replica acknowledgements that did not come in time (sync mode). */
  unacknowledged: number;
  refusedPeers: number;
  malformedFrames: number;
  /** Members learned at run time that stayed gone for `forgetAfterMs` and were forgotten. */
  forgottenMembers: number;
}

const newer = (a: { v: number; o: string }, b: { v: number; o: string }): boolean =>
  a.v > b.v || (a.v === b.v && a.o > b.o);

/** How an entry travels in `update` frames (the value, when sent, is the body). */
const headerOf = (key: string, e: Entry): FrameHeader => ({
  id: key,
  v: e.v,
  o: e.o,
  exp: e.exp,
  p: e.p,
  b: e.b,
});

/** FNV-1a: spreads backups over the members without a crypto hash per write. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function peerList(peers: readonly string[] | string | undefined): string[] {
  if (peers === undefined) return [];
  const list = typeof peers === 'string' ? peers.split(',') : [...peers];
  return list.map((p) => p.trim()).filter((p) => p !== '');
}

const KNOWN_OPTIONS = [
  ...BASE_STORE_OPTIONS,
  'mode',
  'listen',
  'peers',
  'secret',
  'sync',
  'heartbeatMs',
  'missedHeartbeats',
  'requestTimeoutMs',
  'forgetAfterMs',
  'joinTimeoutMs',
  'tombstoneSeconds',
  'sweepIntervalMs',
];

export class ReplicatedStore extends BaseStore {
  protected readonly label: string;
  readonly mode: ReplicationMode;
  readonly sync: boolean;
  readonly #membership: Membership;
  readonly #entries = new Map<string, Entry>();
  readonly #tombstoneMs: number;
  readonly #joinTimeoutMs: number;
  readonly #sweeper: NodeJS.Timeout;
  readonly #joined: Promise<void>;
  readonly #syncs = new Set<Promise<void>>();
  readonly #ids = new Map<string, string>();
  #startError: Error | undefined;
  #closed = false;
  #remoteFetches = 0;
  #lost = 0;
  #promoted = 0;
  #unacknowledged = 0;

  constructor(options: ReplicatedStoreOptions) {
    checkOptions('ReplicatedStore', options, KNOWN_OPTIONS);
    // 2 s, not the shared stores' 1 s: a read may ask the primary and then the backup, each
    // within requestTimeoutMs (1 s).
    super({ ...options, operationTimeoutMs: options.operationTimeoutMs ?? 2000 });
    this.mode = options.mode ?? 'all-to-all';
    if (this.mode !== 'all-to-all' && this.mode !== 'primary-backup') {
      throw new TypeError(
        `unknown replication mode "${String(this.mode)}": use all-to-all or primary-backup`,
      );
    }
    if (!options.secret) throw new TypeError('ReplicatedStore needs a shared secret');
    const { host, port } = splitAddress(options.listen);
    this.sync = options.sync ?? false;
    this.#tombstoneMs = (options.tombstoneSeconds ?? 300) * 1000;
    this.#joinTimeoutMs = options.joinTimeoutMs ?? 5000;
    const forgetAfterMs = options.forgetAfterMs ?? 600_000;
    if (!(forgetAfterMs > 0)) {
      throw new TypeError(
        `forgetAfterMs must be a positive number of ms (or Infinity), got ${forgetAfterMs}`,
      );
    }
    this.#membership = new Membership({
      node: options.listen.trim(),
      host,
      port,
      peers: peerList(options.peers),
      secret: options.secret,
      mode: this.mode,
      heartbeatMs: options.heartbeatMs ?? 500,
      missedHeartbeats: options.missedHeartbeats ?? 3,
      requestTimeoutMs: options.requestTimeoutMs ?? 1000,
      forgetAfterMs,
      logger: this.logger,
    });
    this.label = `cluster ${options.listen.trim()}`;
    this.#membership.on('frame', (frame: Frame, from: string, conn: PeerConnection) =>
      this.#onFrame(frame, from, conn),
    );
    this.#membership.on('connected', (id: string) => this.#track(this.#pull(id)));
    this.#membership.on('member-gone', (id: string) => this.#onGone(id));
    // Entries still naming it keep their copy of the string; new ones need not share it.
    this.#membership.on('member-forgotten', (id: string) => this.#ids.delete(id));
    this.#sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 30_000);
    this.#sweeper.unref();
    this.#joined = this.#join();
    this.#joined.catch(() => {});
  }

  /** This node's id in the cluster (`host:port`; with port 0, known once `ready()` resolves). */
  get node(): string {
    return this.#membership.node;
  }

  /** The port peers connect to. */
  get port(): number {
    return this.#membership.boundPort;
  }

  /**
   * Where a session lives as this node knows it: its primary and backup (primary-backup mode;
   * in all-to-all the last writer and no backup), whether this node holds its value, and when
   * it expires (the same absolute time on every node).
   */
  locate(id: string): { primary: string; backup: string; hasValue: boolean; expiresAt: number } | undefined {
    const e = this.#entries.get(this.prefix + id);
    if (!e || e.dead || e.exp <= Date.now()) return undefined;
    return { primary: e.p, backup: e.b, hasValue: e.text !== undefined, expiresAt: e.exp };
  }

  /** Members alive now, this node excluded. */
  members(): string[] {
    return this.#membership.alive();
  }

  /**
   * Resolves once this node listens and has pulled the state of every peer it could reach (a
   * joining node serves existing sessions from its first request); rejects if it cannot listen.
   */
  override ready(timeoutMs = this.#joinTimeoutMs + 1000): Promise<void> {
    // BaseStore's wait for 'connect' (emitted once joined), cut short when listening fails.
    return Promise.race([super.ready(timeoutMs), this.#joined]);
  }

  async #join(): Promise<void> {
    try {
      await this.#membership.start();
    } catch (err) {
      this.#startError = new Error(`cluster node cannot listen on ${this.node}: ${(err as Error).message}`, {
        cause: err,
      });
      this.logger.warn(this.#startError.message);
      throw this.#startError;
    }
    // Every static peer either answers (and its state is pulled) or fails a dial; a cluster's
    // first node finds nobody and serves at once.
    const deadline = Date.now() + this.#joinTimeoutMs;
    while (!this.#closed && Date.now() < deadline) {
      if (this.#membership.undecided.length === 0 && this.#syncs.size === 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const waiting = this.#membership.undecided;
    if (waiting.length > 0) {
      this.logger.warn(
        `cluster: serving without ${waiting.join(', ')} (no answer within ${this.#joinTimeoutMs} ms)`,
      );
    }
    this.markUp();
  }

  #track(sync: Promise<void>): void {
    this.#syncs.add(sync);
    void sync.finally(() => this.#syncs.delete(sync));
  }

  protected override probe(): void {}
  protected override onReachable(): void {}
  protected isUnreachable(): boolean {
    return false;
  }

  stats(): ReplicatedStoreStats {
    const now = Date.now();
    let sessions = 0;
    let values = 0;
    let valueBytes = 0;
    let tombstones = 0;
    for (const e of this.#entries.values()) {
      if (e.dead) {
        tombstones++;
        continue;
      }
      if (e.exp <= now) continue;
      sessions++;
      if (e.text !== undefined) {
        values++;
        valueBytes += Buffer.byteLength(e.text);
      }
    }
    const m = this.#membership;
    return {
      node: this.node,
      mode: this.mode,
      members: [...m.members.values()].map((member) => ({ id: member.id, state: member.state })),
      sessions,
      values,
      idOnly: sessions - values,
      valueBytes,
      tombstones,
      ...m.counters,
      remoteFetches: this.#remoteFetches,
      lost: this.#lost,
      promoted: this.#promoted,
      unacknowledged: this.#unacknowledged,
      refusedPeers: m.refused,
      malformedFrames: m.malformed,
      forgottenMembers: m.forgotten,
    };
  }

  /** Drops expired sessions and old tombstones; returns how many. */
  sweep(now = Date.now()): number {
    let dropped = 0;
    for (const [key, e] of this.#entries) {
      if (e.exp <= now) {
        this.#entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    await this.#membership.close();
  }

  // --- the four primitives ---

  protected async read(key: string): Promise<string | undefined> {
    const e = this.#entries.get(key);
    if (e === undefined) return this.#askAround(key);
    if (e.dead) return undefined;
    if (e.exp <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    if (e.text !== undefined) return e.text;
    return this.#fetchValue(key, e);
  }

  protected write(key: string, text: string, ttlSeconds: number): Promise<void> {
    return this.#own(key, text, Date.now() + ttlSeconds * 1000);
  }

  protected remove(key: string): Promise<void> {
    const cur = this.#entries.get(key);
    const e: Entry = {
      v: this.#nextVersion(cur),
      o: this.node,
      exp: Date.now() + this.#tombstoneMs,
      p: '',
      b: '',
      text: undefined,
      dead: true,
    };
    this.#entries.set(key, e);
    return this.#toAll(FrameType.destroy, { id: key, v: e.v, o: e.o, exp: e.exp });
  }

  protected async extend(key: string, ttlSeconds: number): Promise<boolean> {
    const e = this.#entries.get(key);
    if (e === undefined || e.dead || e.exp <= Date.now()) return false;
    e.exp = Date.now() + ttlSeconds * 1000;
    await this.#toAll(FrameType.touch, { id: key, exp: e.exp });
    return true;
  }

  // --- writing and replicating ---

  /**
   * A write's version is the clock (at least one more than the version it replaces): the last
   * writer wins. A change of placement only (a takeover, a promotion, a new backup: same value)
   * is one more than the version it moves, no more, so it never beats a real write made
   * elsewhere in the meantime: a node that was cut off and re-replicates its old copy loses to
   * the writes the others made without it.
   */
  #nextVersion(cur: Entry | undefined, placementOnly?: boolean): number {
    if (placementOnly && cur) return cur.v + 1;
    return Math.max(Date.now(), (cur?.v ?? 0) + 1);
  }

  /**
   * This node writes (or takes over) a session: it becomes the primary; the copies follow.
   * `how.unchanged` is the version taken over when the value is the same: a backup that holds it
   * already is sent only the new version's id, not the value again. In sync mode, a backup that
   * does not acknowledge is replaced by another one (at most twice), so that a write that
   * resolves has a replica whenever another node can take one.
   */
  #own(key: string, text: string, exp: number, how: OwnOptions = {}): Promise<void> {
    const cur = this.#entries.get(key);
    const e: Entry = {
      v: this.#nextVersion(cur, how.placementOnly),
      o: this.node,
      exp,
      p: this.node,
      b: this.mode === 'primary-backup' ? this.#chooseBackup(key, cur, how.failed) : '',
      text,
      dead: false,
    };
    this.#entries.set(key, e);
    const published = this.#publish(key, e, how.unchanged, cur);
    if (!this.sync || this.mode !== 'primary-backup') return published.then(() => {});
    return published.then((acknowledged) => {
      if (acknowledged || e.b === '' || this.#closed || this.#entries.get(key) !== e) return;
      const failed = new Set(how.failed).add(e.b);
      if (failed.size > 2) return;
      return this.#own(key, text, exp, { placementOnly: how.placementOnly, failed });
    });
  }

  /**
   * A backup for a session this node is primary of: keep the current backup or the previous
   * primary when reachable (they hold a copy already), else spread by hashing id and member.
   * Only members with an open connection qualify: one that died a moment ago is still "up" until
   * it is declared gone, and a copy sent there would be no copy.
   */
  #chooseBackup(key: string, cur: Entry | undefined, exclude?: Set<string>): string {
    const me = this.node;
    const usable = (id: string) =>
      id !== '' && id !== me && !exclude?.has(id) && this.#membership.reachable(id);
    if (cur && !cur.dead) {
      if (usable(cur.b)) return cur.b;
      if (usable(cur.p)) return cur.p;
    }
    let best = '';
    let bestScore = -1;
    for (const id of this.#membership.alive()) {
      if (!usable(id)) continue;
      const score = hash(`${key}|${id}`);
      if (score > bestScore) {
        best = id;
        bestScore = score;
      }
    }
    return best;
  }

  /**
   * Sends a version to the members: all-to-all, the value to all; else the value to the backup,
   * the id to the rest. Sync mode waits for the replicas, and in primary-backup also for the
   * previous primary and backup, so that they stop serving the old value before the write
   * resolves. Resolves true unless the backup failed to acknowledge.
   */
  #publish(key: string, e: Entry, unchanged?: Entry, previous?: Entry): Promise<boolean> {
    const header = headerOf(key, e);
    // The previous primary and backup hold `unchanged` already (primary-backup takeovers).
    const holds = (id: string) => unchanged !== undefined && (id === unchanged.p || id === unchanged.b);
    const keepHeader = unchanged ? { ...header, kv: unchanged.v, ko: unchanged.o } : header;
    const formerHolder = (id: string) =>
      previous !== undefined && !previous.dead && (id === previous.p || id === previous.b);
    const waits: Promise<boolean>[] = [];
    let backupAck: Promise<boolean> | undefined;
    for (const id of this.#membership.alive()) {
      const valued = this.mode === 'all-to-all' || id === e.b;
      const body = valued && !holds(id) ? e.text : undefined;
      const h = valued && holds(id) ? keepHeader : header;
      if (this.sync && (valued || formerHolder(id))) {
        const ack = this.#acknowledged(id, FrameType.update, h, body);
        if (id === e.b) backupAck = ack;
        waits.push(ack);
      } else {
        this.#membership.send(id, FrameType.update, h, body);
      }
    }
    if (waits.length === 0) return Promise.resolve(true);
    return Promise.all(waits).then(() => backupAck ?? true);
  }

  /** Touches and destroys go to every member; in sync mode, acknowledged by all. */
  #toAll(type: typeof FrameType.touch | typeof FrameType.destroy, header: FrameHeader): Promise<void> {
    const waits: Promise<boolean>[] = [];
    for (const id of this.#membership.alive()) {
      if (this.sync) waits.push(this.#acknowledged(id, type, header));
      else this.#membership.send(id, type, header);
    }
    return waits.length === 0 ? Promise.resolve() : Promise.all(waits).then(() => {});
  }

  /**
   * Sends and waits for the acknowledgement: true when it came. A member that does not answer in
   * time is counted, not failed on: it is either slow or about to be declared gone, and then its
   * sessions are re-replicated by the failure handling.
   */
  #acknowledged(
    id: string,
    type: typeof FrameType.update | typeof FrameType.touch | typeof FrameType.destroy,
    header: FrameHeader,
    body?: string,
  ): Promise<boolean> {
    return this.#membership.request(id, type, header, body).then(
      () => true,
      () => {
        this.#unacknowledged++;
        return false;
      },
    );
  }

  // --- reading what this node does not hold ---

  /** Primary-backup: the value from the primary, else the backup; this node then owns the session. */
  async #fetchValue(key: string, e: Entry): Promise<string | undefined> {
    // Neither answering with the value: maybe ownership moved on and this index is stale.
    return (await this.#valueFrom(key, [e.p, e.b])) ?? this.#askAround(key, [e.p, e.b]);
  }

  /** The value from the first of `targets` (this node and `skip` aside) that has it, kept here. */
  async #valueFrom(key: string, targets: readonly string[], skip: readonly string[] = []) {
    for (const target of targets) {
      if (target === '' || target === this.node || skip.includes(target)) continue;
      const found = await this.#fetch(target, key);
      if (found?.text !== undefined && !found.dead) return this.#adopt(key, found);
    }
    return undefined;
  }

  /** A session unknown here (new id, or its change is still in flight): ask every member. */
  async #askAround(key: string, skip: readonly string[] = []): Promise<string | undefined> {
    const targets = this.#membership.alive().filter((id) => !skip.includes(id));
    if (targets.length === 0) return undefined;
    const answers = await Promise.all(targets.map((id) => this.#fetch(id, key)));
    let best: Entry | undefined;
    for (const a of answers) if (a && (a.text !== undefined || a.dead) && (!best || newer(a, best))) best = a;
    if (best === undefined) {
      // Only ids came back (primary-backup): follow the newest one's pointers once.
      let hint: Entry | undefined;
      for (const a of answers) if (a && (!hint || newer(a, hint))) hint = a;
      return hint === undefined ? undefined : this.#valueFrom(key, [hint.p, hint.b], targets);
    }
    if (best.dead || best.exp <= Date.now()) return undefined;
    return this.#adopt(key, best);
  }

  /**
   * Keeps a fetched value: in all-to-all as a copy; in primary-backup this node becomes its
   * primary, just after the read returns. Most reads are followed by a write of the same session,
   * which makes this node primary anyway, so the takeover only happens if no write came first.
   */
  #adopt(key: string, found: Entry): string | undefined {
    const text = found.text!;
    const cur = this.#entries.get(key);
    if (!cur || !newer(cur, found)) this.#entries.set(key, found);
    if (this.mode === 'primary-backup') {
      setImmediate(() => {
        if (!this.#closed && this.#entries.get(key) === found) {
          void this.#own(key, text, found.exp, { placementOnly: true, unchanged: found });
        }
      });
    }
    return text;
  }

  async #fetch(target: string, key: string): Promise<Entry | undefined> {
    this.#remoteFetches++;
    try {
      const answer = await this.#membership.request(target, FrameType.fetch, { id: key });
      return this.#entryOf(answer);
    } catch {
      return undefined;
    }
  }

  /**
   * One string per node id, shared by every entry that names it: parsed headers would otherwise
   * give each entry its own copies (three per session, on every node).
   */
  #intern(id: string): string {
    if (id === '') return '';
    let known = this.#ids.get(id);
    if (known === undefined) {
      known = id;
      this.#ids.set(id, id);
    }
    return known;
  }

  #entryOf(frame: Frame): Entry | undefined {
    const h = frame.header;
    if (
      h.found === false ||
      typeof h.v !== 'number' ||
      typeof h.o !== 'string' ||
      typeof h.exp !== 'number'
    ) {
      return undefined;
    }
    return {
      v: h.v,
      o: this.#intern(h.o),
      exp: h.exp,
      p: typeof h.p === 'string' ? this.#intern(h.p) : '',
      b: typeof h.b === 'string' ? this.#intern(h.b) : '',
      text: frame.body.length > 0 ? frame.body.toString('utf8') : undefined,
      dead: h.dead === true,
    };
  }

  // --- what peers send ---

  #onFrame(frame: Frame, from: string, conn: PeerConnection): void {
    const h = frame.header;
    const id = h.id;
    switch (frame.type) {
      case FrameType.update: {
        const incoming = typeof id === 'string' ? this.#entryOf(frame) : undefined;
        if (incoming) this.#applyUpdate(id as string, incoming, h);
        break;
      }
      case FrameType.touch: {
        const e = typeof id === 'string' ? this.#entries.get(id) : undefined;
        if (e && !e.dead && typeof h.exp === 'number' && h.exp > e.exp) e.exp = h.exp;
        break;
      }
      case FrameType.destroy: {
        if (typeof id !== 'string' || typeof h.v !== 'number' || typeof h.o !== 'string') break;
        const cur = this.#entries.get(id);
        const exp = typeof h.exp === 'number' ? h.exp : Date.now() + this.#tombstoneMs;
        if (!cur || newer({ v: h.v, o: h.o }, cur)) {
          this.#entries.set(id, { v: h.v, o: h.o, exp, p: '', b: '', text: undefined, dead: true });
        }
        break;
      }
      case FrameType.fetch: {
        if (typeof id === 'string') this.#answerFetch(conn, frame, id);
        return;
      }
      case FrameType.sync:
        this.#answerSync(conn, frame, from);
        return;
      default:
        return;
    }
    if (typeof h.seq === 'number') conn.reply(frame, FrameType.ack, {});
  }

  #applyUpdate(key: string, incoming: Entry, h: FrameHeader): void {
    if (incoming.exp <= Date.now()) return;
    const cur = this.#entries.get(key);
    if (cur && !newer(incoming, cur)) return;
    const mine = incoming.p === this.node || incoming.b === this.node;
    if (this.mode === 'primary-backup' && !mine) {
      incoming.text = undefined; // not ours to hold: only the id and where it lives
    } else if (incoming.text === undefined && mine && this.mode === 'primary-backup') {
      // A takeover that did not change the value: keep the copy held here if it is that version.
      if (cur?.text !== undefined && cur.v === h.kv && cur.o === h.ko) incoming.text = cur.text;
      else void this.#refill(key, incoming);
    }
    this.#entries.set(key, incoming);
  }

  /** Named backup without the value it was expected to hold: fetch it from the primary. */
  async #refill(key: string, entry: Entry): Promise<void> {
    const found = await this.#fetch(entry.p, key);
    if (found?.text !== undefined && this.#entries.get(key) === entry && found.v === entry.v) {
      entry.text = found.text;
    }
  }

  #answerFetch(conn: PeerConnection, frame: Frame, key: string): void {
    const e = this.#entries.get(key);
    if (!e || (!e.dead && e.exp <= Date.now())) {
      conn.reply(frame, FrameType.fetched, { found: false });
      return;
    }
    conn.reply(
      frame,
      FrameType.fetched,
      { found: true, v: e.v, o: e.o, exp: e.exp, p: e.p, b: e.b, dead: e.dead },
      e.text,
    );
  }

  /** A peer that just came up pulls what this node knows, as ordinary updates, then `synced`. */
  #answerSync(conn: PeerConnection, frame: Frame, from: string): void {
    const now = Date.now();
    let count = 0;
    for (const [key, e] of this.#entries) {
      if (e.exp <= now) continue;
      if (e.dead) {
        conn.send(FrameType.destroy, { id: key, v: e.v, o: e.o, exp: e.exp });
      } else {
        const withValue = this.mode === 'all-to-all' || e.p === from || e.b === from;
        conn.send(FrameType.update, headerOf(key, e), withValue ? e.text : undefined);
      }
      count++;
    }
    conn.reply(frame, FrameType.synced, { count });
  }

  /** Pulls a member's state on each connection to it (at start, on a join, after a pause or a partition). */
  async #pull(id: string): Promise<void> {
    try {
      await this.#membership.request(id, FrameType.sync, {}, undefined, Math.max(this.#joinTimeoutMs, 5000));
    } catch (err) {
      if (!this.#closed)
        this.logger.warn(`cluster: could not pull the sessions of ${id}: ${(err as Error).message}`);
    }
  }

  // --- failure handling (primary-backup; in all-to-all every node already holds everything) ---

  #onGone(gone: string): void {
    if (this.mode !== 'primary-backup') return;
    const me = this.node;
    const up = (id: string) => id === me || (id !== '' && this.#membership.isUp(id));
    const now = Date.now();
    let lost = 0;
    let promoted = 0;
    for (const [key, e] of this.#entries) {
      if (e.dead || e.exp <= now || (e.p !== gone && e.b !== gone)) continue;
      const primaryUp = up(e.p);
      if (e.p === me) {
        // Our backup died: replicate to a new one (a new version with the same value).
        void this.#own(key, e.text ?? '', e.exp, { placementOnly: true });
      } else if (!primaryUp && e.text !== undefined) {
        // Its primary died and this node holds a copy (it is the backup): take over.
        promoted++;
        void this.#own(key, e.text, e.exp, { placementOnly: true });
      } else if (!primaryUp && !up(e.b)) {
        this.#entries.delete(key);
        lost++;
      }
    }
    this.#lost += lost;
    this.#promoted += promoted;
    if (lost > 0 || promoted > 0) {
      this.logger.warn(
        `cluster: ${gone} is gone: ${promoted} session(s) taken over here, ${lost} lost with no surviving copy`,
      );
    }
  }
}
