/**
 * The session a handler sees: its data are the object's own properties (`session.count = 1`), as
 * with express-session, and the bookkeeping the middleware needs lives outside the object so it
 * is never mistaken for data. `id`, `isNew`, `cookie` and the method names are reserved.
 */
import type { SessionData } from './store.js';

/** Lifecycle verbs a session delegates to whoever loaded it (the session manager). */
export interface SessionOwner {
  regenerate(session: Session, keepData: boolean): Promise<void>;
  destroy(session: Session): Promise<void>;
  save(session: Session): Promise<void>;
}

/** Bookkeeping per session, kept beside it. */
export interface SessionState {
  id: string;
  owner: SessionOwner;
  /** No stored session existed (or it was regenerated) and nothing has been stored yet. */
  isNew: boolean;
  /** The client does not hold this id yet: the cookie must be sent. */
  idChanged: boolean;
  /** The cookie was signed with an older secret: send it again signed with the current one. */
  resign: boolean;
  /** The request carried a session cookie (so a destroyed session's cookie must be cleared). */
  hadCookie: boolean;
  destroyed: boolean;
  /** JSON of the data as last loaded or stored: saving happens only when it differs. */
  storedJson: string;
  /** Fixed expiry: when the session ends regardless of activity; null when not fixed. */
  expires: Date | null;
  /** The store already has this request's state (explicit save()): no second write or touch. */
  committed: boolean;
}

const RESERVED = new Set(['id', 'isNew', 'cookie', '__proto__']);
const states = new WeakMap<Session, SessionState>();

/** The bookkeeping of a session (for the session manager, not exported by the library). */
export function sessionState(session: Session): SessionState {
  const state = states.get(session);
  if (!state) throw new TypeError('not a session created by the session manager');
  return state;
}

export class Session {
  [key: string]: unknown;

  constructor(state: SessionState, data?: SessionData) {
    states.set(this, state);
    if (data) this.assign(data);
  }

  /** The session id (what the signed cookie carries). */
  get id(): string {
    return sessionState(this).id;
  }

  /** True until the session has been stored once. */
  get isNew(): boolean {
    return sessionState(this).isNew;
  }

  /**
   * A new id for this session, the old one deleted from the store: call it when privileges
   * change (log in) so an id planted before cannot follow the user (session fixation).
   * Data are dropped unless `keepData`.
   */
  regenerate(options: { keepData?: boolean } = {}): Promise<void> {
    return sessionState(this).owner.regenerate(this, options.keepData ?? false);
  }

  /** Deletes the session from the store and clears the cookie; nothing is saved afterwards. */
  destroy(): Promise<void> {
    return sessionState(this).owner.destroy(this);
  }

  /** Stores the session now rather than when the response ends. */
  save(): Promise<void> {
    return sessionState(this).owner.save(this);
  }

  /** The data: own properties, as stored. */
  data(): SessionData {
    const out: SessionData = {};
    for (const key of Object.keys(this)) out[key] = this[key];
    return out;
  }

  /** Removes every data property. */
  clear(): void {
    for (const key of Object.keys(this)) delete this[key];
  }

  /** Copies stored data onto the session, skipping reserved names. */
  assign(data: SessionData): void {
    for (const key of Object.keys(data)) {
      if (!RESERVED.has(key) && typeof Session.prototype[key as keyof Session] !== 'function') {
        this[key] = data[key];
      }
    }
  }
}
