/** A client connection as its listener's sweep and shutdown see it, whatever its protocol. */
export interface FrontConnection {
  /** When the connection's current step times out (ms since epoch); the sweep then calls onTimeout. */
  deadline: number;
  onTimeout(): void;
  /** When a streaming request body's rate is checked next (`timeouts.bodyMinRate`); Infinity: never. */
  bodyCheckAt: number;
  checkBodyRate(now: number): void;
  /** Nothing in flight: safe to close now (shutdown). */
  readonly idle: boolean;
  /** Shutdown: an idle connection closes within `graceMs`, a busy one after its work in flight. */
  shutdown(graceMs: number): void;
  /** Cut the connection (shutdown timeout). */
  destroy(): void;
}
