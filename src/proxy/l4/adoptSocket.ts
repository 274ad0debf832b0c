import { Socket } from 'node:net';

/** `onread` as net.connect takes it. */
export interface OnRead {
  buffer: Uint8Array | (() => Uint8Array);
  callback: (bytesWritten: number, buffer: Uint8Array) => boolean;
}

interface HandleOwner {
  _handle: { readStart?: unknown } | null;
}

/**
 * An accepted socket, re-wrapped to read into buffers of ours. net.Server has no `onread`: Node
 * reads accepted sockets into a fresh 64 KiB allocation per read, which a relay pays for in
 * allocation and garbage collection on every chunk (client → server throughput measured at about
 * half of what the same relay reaches with `onread`). The listener accepts with `pauseOnConnect`,
 * so nothing has been read yet, and the connection's handle moves into a Socket created with
 * `onread`. The original Socket keeps the server's connection count: it is destroyed (without a
 * handle, so only the count moves) when the new one closes.
 *
 * `_handle` is a Node internal (unchanged since Node 12); when it is not there as expected, the
 * socket is left alone and undefined is returned: the caller reads it the ordinary way.
 */
export function adoptWithOnread(accepted: Socket, onread: OnRead): Socket | undefined {
  const owner = accepted as unknown as HandleOwner;
  const handle = owner._handle;
  if (handle === null || typeof handle !== 'object' || typeof handle.readStart !== 'function')
    return undefined;
  owner._handle = null;
  let adopted: Socket;
  try {
    adopted = new Socket({
      handle,
      allowHalfOpen: true,
      readable: true,
      writable: true,
      pauseOnCreate: true,
      onread,
    } as unknown as ConstructorParameters<typeof Socket>[0]);
  } catch {
    owner._handle = handle;
    return undefined;
  }
  adopted.once('close', () => accepted.destroy());
  return adopted;
}
