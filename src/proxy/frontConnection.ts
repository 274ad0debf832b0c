/** A client connection as its listener's sweep and shutdown see it, whatever its protocol. */
export interface FrontConnection {
  /** When the connection's current step times out (ms since epoch); the sweep then calls onTimeout. */
  deadline: number;
  onTimeout(): void;
  /** Nothing in flight: safe to close now (shutdown). */
  readonly idle: boolean;
  /** Shutdown: close now if idle, else after the work in flight. */
  shutdown(): void;
  /** Cut the connection (shutdown timeout). */
  destroy(): void;
}
