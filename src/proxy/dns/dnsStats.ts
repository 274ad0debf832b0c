/** Why a packet got no answer. */
export type DropReason = 'malformed' | 'rate-limited' | 'too-large';

/**
 * A dns listener's counters: queries answered by question type and response code, and packets
 * dropped by reason. Plain numbers in small maps: the metrics module reads them when scraped.
 */
export class DnsStats {
  /** "A NOERROR" → count. */
  readonly answered = new Map<string, number>();
  readonly dropped = new Map<DropReason, number>();
  /** UDP answers sent with TC set (too large for the client's UDP size). */
  truncated = 0;

  count(qtype: string, rcode: string): void {
    // Question types are the decoder's names, or "UNKNOWN_<n>": bounded by 65536, in practice few.
    const key = `${qtype} ${rcode}`;
    this.answered.set(key, (this.answered.get(key) ?? 0) + 1);
  }

  drop(reason: DropReason): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
  }

  /** Total answered. */
  get queries(): number {
    let n = 0;
    for (const v of this.answered.values()) n += v;
    return n;
  }
}
