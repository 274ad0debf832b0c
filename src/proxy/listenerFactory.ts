import type { ListenerConfig } from '../config/types.js';
import { DnsListener } from './dns/dnsListener.js';
import { HttpListener } from './http/httpListener.js';
import type { Listener, ListenerDeps } from './listener.js';
import { TcpListener } from './tcp/tcpListener.js';
import { UdpListener } from './udp/udpListener.js';

/** One place that knows which class serves which protocol. */
export function createListener(config: ListenerConfig, deps: ListenerDeps): Listener {
  switch (config.protocol) {
    case 'http':
      return new HttpListener(config, deps);
    case 'tcp':
      return new TcpListener(config, deps);
    case 'udp':
      return new UdpListener(config, deps);
    case 'dns':
      return new DnsListener(config, deps);
    default:
      throw new Error(`protocol "${(config as ListenerConfig).protocol}" is not available in this version`);
  }
}
