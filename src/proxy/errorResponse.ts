/**
 * The one mapping from a failure to what the client is answered and what the log says, for every
 * front: the status (502/503/504 for the server side, 400/408/431/501 for the client's request),
 * the Retry-After a 503 carries, the body, and the log line naming listener, pool and server.
 */
import { STATUS_CODES } from 'node:http';

/** Why an exchange failed before any of the server's response reached the client. */
export enum Failure {
  /** The pool had no usable server (or none left to try). */
  NoServer = 0,
  /** The connection to the server was refused or failed. */
  ConnectFailed = 1,
  /** The connection to the server was not established in time. */
  ConnectTimeout = 2,
  /** The server closed or reset the connection before answering. */
  Reset = 3,
  /** The server did not answer (or stopped answering) in time. */
  ResponseTimeout = 4,
  /** The server answered something that is not HTTP/1.1. */
  BadResponse = 5,
}

const FAILURE_STATUS: Record<Failure, number> = {
  [Failure.NoServer]: 503,
  [Failure.ConnectFailed]: 502,
  [Failure.ConnectTimeout]: 504,
  [Failure.Reset]: 502,
  [Failure.ResponseTimeout]: 504,
  [Failure.BadResponse]: 502,
};

/** The status a client is answered for a failure. */
export function statusOf(failure: Failure): number {
  return FAILURE_STATUS[failure];
}

/** The `retries.on` condition a failure falls under, if any (bad responses are never retried). */
export function retryCondition(failure: Failure): 'connect-failure' | 'reset' | 'timeout' | null {
  switch (failure) {
    case Failure.ConnectFailed:
    case Failure.ConnectTimeout:
      return 'connect-failure';
    case Failure.Reset:
      return 'reset';
    case Failure.ResponseTimeout:
      return 'timeout';
    default:
      return null;
  }
}

/** Seconds a client is told to wait before trying again after a 503 (no server available). */
export const RETRY_AFTER_S = 1;

/** The reason phrase of a status. */
export function reasonOf(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

/** The plain-text body of an error answer: "503 Service Unavailable\n". */
export function errorBody(status: number): string {
  return `${status} ${reasonOf(status)}\n`;
}

/**
 * A complete HTTP/1.1 error response. `head`: the request was HEAD (no body, same length);
 * `close`: the connection closes after it; `extra`: header lines of the caller's (each ending in
 * CRLF), such as a 429's Retry-After.
 */
export function http1ErrorResponse(status: number, head: boolean, close: boolean, extra = ''): string {
  const body = head ? '' : errorBody(status);
  let h = `HTTP/1.1 ${status} ${reasonOf(status)}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n`;
  if (status === 503) h += `retry-after: ${RETRY_AFTER_S}\r\n`;
  h += extra;
  if (close) h += 'connection: close\r\n';
  return `${h}\r\n${body}`;
}

/** The log line of a failed exchange: what was asked, by whom, of which pool, and why. */
export function failureLine(
  listener: string,
  method: string,
  path: string,
  clientIp: string,
  pool: string | undefined,
  msg: string,
): string {
  return `${listener}: ${method} ${path} from ${clientIp} pool ${pool}: ${msg}`;
}
