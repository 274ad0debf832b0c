import type { BalancingPolicy, SelectContext } from '../core/selection.js';
import type { Server } from '../core/server.js';
import { fmix32, hash32 } from './hash.js';
import { weightsApply } from './weights.js';

/** Ring points per unit of weight: enough for an even spread (about ±8% per server). */
export const POINTS_PER_WEIGHT = 160;
/** Above this many points, points per weight are halved until the ring fits. */
export const MAX_RING_POINTS = 1 << 16;
/** Ordinals live in the low bits of the sort keys, below the 32-bit ring position. */
const ORDINAL_BITS = 21;
const ORDINAL_SCALE = 2 ** ORDINAL_BITS;
const GOLDEN = 0x9e3779b9;

/**
 * Consistent hashing of `ctx.hashKey ?? ctx.clientIp` on a ring of virtual nodes.
 *
 * Each server owns points derived from its `id` only (never its position in the array), as many
 * as its effective weight at the last rebuild times POINTS_PER_WEIGHT. A key belongs to the first
 * point clockwise from its hash. Removing one of N servers moves only that server's keys, spread
 * over the others; adding one moves about 1/(N+1) of the keys, all to the new server.
 *
 * A retry walks the ring on from the key's point to the first server not tried: the choice the
 * ring would make without the tried servers, so a client keeps landing on the same fallback.
 * Weight-0 servers own no points while any server has weight > 0; when only such servers are
 * left untried, rendezvous hashing chooses among them, consistently too.
 */
export class IpHash implements BalancingPolicy {
  readonly name = 'ip-hash';
  private servers: readonly Server[] = [];
  private readonly slots = new Map<Server, number>();
  /** Sorted ring positions, and the slot (index in `servers`) owning each. */
  private points = new Uint32Array(0);
  private owners = new Int32Array(0);
  /** Fallback marks of the tried servers, per slot, valid when equal to `generation`. */
  private marks = new Int32Array(0);
  private generation = 0;

  rebuild(eligible: readonly Server[]): void {
    const n = eligible.length;
    this.servers = eligible;
    this.slots.clear();
    for (let i = 0; i < n; i++) this.slots.set(eligible[i]!, i);
    this.marks = new Int32Array(n);
    this.generation = 0;

    const weighted = weightsApply(eligible);
    const weightOf = (s: Server): number => (weighted ? Math.max(s.effectiveWeight || 0, 0) : 1);
    let totalWeight = 0;
    for (const s of eligible) totalWeight += weightOf(s);
    // Halving (not rescaling) keeps existing points when the total weight changes a little.
    let perWeight = POINTS_PER_WEIGHT;
    while (perWeight > 1 && totalWeight * perWeight > MAX_RING_POINTS) perWeight >>= 1;

    // Ordinals follow id order, so colliding positions are ordered by id, not by array index.
    const order = eligible.map((_, i) => i).sort((a, b) => compareIds(eligible[a]!.id, eligible[b]!.id));
    const counts = order.map((i) => {
      const w = weightOf(eligible[i]!);
      return w > 0 ? Math.max(1, Math.round(w * perWeight)) : 0;
    });
    let size = 0;
    for (const c of counts) size += c;
    if (size >= ORDINAL_SCALE) throw new RangeError(`ip-hash ring too large: ${size} points`);

    const keys = new Float64Array(size);
    const ordinalOwner = new Int32Array(size);
    let ordinal = 0;
    for (let k = 0; k < order.length; k++) {
      const slot = order[k]!;
      const base = hash32(eligible[slot]!.id);
      for (let v = 0; v < counts[k]!; v++) {
        keys[ordinal] = pointOf(base, v) * ORDINAL_SCALE + ordinal;
        ordinalOwner[ordinal] = slot;
        ordinal++;
      }
    }
    keys.sort();
    this.points = new Uint32Array(size);
    this.owners = new Int32Array(size);
    for (let j = 0; j < size; j++) {
      const key = keys[j]!;
      this.points[j] = Math.floor(key / ORDINAL_SCALE);
      this.owners[j] = ordinalOwner[key % ORDINAL_SCALE]!;
    }
  }

  pick(eligible: readonly Server[], ctx: SelectContext): Server {
    if (eligible !== this.servers) this.rebuild(eligible);
    const at = this.locate(hash32(ctx.hashKey ?? ctx.clientIp));
    return this.servers[this.owners[at]!]!;
  }

  /** Rare path: walk clockwise to the first point owned by a server not tried. */
  fallback(eligible: readonly Server[], ctx: SelectContext, tried: readonly Server[]): Server | undefined {
    if (eligible !== this.servers) this.rebuild(eligible);
    if (this.generation === 0x7fffffff) {
      this.marks.fill(0);
      this.generation = 0;
    }
    const gen = ++this.generation;
    let excluded = 0;
    for (const s of tried) {
      const slot = this.slots.get(s);
      if (slot !== undefined && this.marks[slot] !== gen) {
        this.marks[slot] = gen;
        excluded++;
      }
    }
    if (excluded === eligible.length) return undefined;
    const key = ctx.hashKey ?? ctx.clientIp;
    const h = hash32(key);
    const size = this.points.length;
    const start = this.locate(h);
    for (let k = 0; k < size; k++) {
      let j = start + k;
      if (j >= size) j -= size;
      const slot = this.owners[j]!;
      if (this.marks[slot] !== gen) return this.servers[slot]!;
    }
    // Only servers without points (weight 0) are left: rendezvous hashing keeps it consistent.
    let best: Server | undefined;
    let bestScore = -1;
    for (let slot = 0; slot < eligible.length; slot++) {
      if (this.marks[slot] === gen) continue;
      const s = eligible[slot]!;
      const score = fmix32(h ^ hash32(s.id));
      if (score > bestScore) {
        bestScore = score;
        best = s;
      }
    }
    return best;
  }

  /** Index of the first ring point at or after `h`, wrapping around. */
  private locate(h: number): number {
    const points = this.points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return lo === points.length ? 0 : lo;
  }
}

/** Position of a server's v-th point: distinct for every v, as fmix32 is a bijection. */
function pointOf(idHash: number, v: number): number {
  return fmix32((idHash + Math.imul(v + 1, GOLDEN)) >>> 0);
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
