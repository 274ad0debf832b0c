/**
 * keepalived.conf for one balancer of an active/standby pair, in the shape docs/redundancy.md
 * shows (the redundancy test checks that the documented files are this function's output): one
 * VRRP instance with unicast peers, the virtual IP, and a track_script running `fulcrum health`.
 * A failing script puts the instance in FAULT: it sends priority 0 and gives up the address at
 * once, which works with `nopreempt` (a lowered priority would not make a nopreempt peer take
 * over).
 */

/** One host's settings. */
export interface KeepalivedHost {
  /** `router_id`: names this host in keepalived's log. */
  routerId: string;
  /** The interface that carries the virtual IP and the adverts. */
  iface: string;
  /** This host's own address (unicast_src_ip). */
  address: string;
  /** The other balancer's address (unicast_peer). */
  peer: string;
  /** 1–254; the higher one is master when both are healthy and start together. */
  priority: number;
  /** The virtual IP with its prefix length, e.g. 192.0.2.10/24. */
  vip: string;
  /** The command keepalived runs every second. */
  healthCommand: string;
  /** Whether a healthy master that comes back leaves the address where it is (default true). */
  nopreempt?: boolean;
  /** The VRRP router id both hosts share (default 51). */
  virtualRouterId?: number;
  /** Seconds keepalived lets one run of the script take (default 3; a loaded test host needs more). */
  scriptTimeout?: number;
  /** Seconds between two runs of the script (default 1). */
  scriptInterval?: number;
}

/** The keepalived.conf text for `host`. */
export function keepalivedConf(host: KeepalivedHost): string {
  return `global_defs {
  router_id ${host.routerId}
  script_user root
  enable_script_security
}

vrrp_script fulcrum_health {
  script "${host.healthCommand}"
  interval ${host.scriptInterval ?? 1}
  timeout ${host.scriptTimeout ?? 3}
  fall 2
  rise 2
}

vrrp_instance fulcrum {
  state BACKUP
  interface ${host.iface}
  virtual_router_id ${host.virtualRouterId ?? 51}
  priority ${host.priority}
  advert_int 1
${host.nopreempt === false ? '' : '  nopreempt\n'}  unicast_src_ip ${host.address}
  unicast_peer {
    ${host.peer}
  }
  virtual_ipaddress {
    ${host.vip} dev ${host.iface}
  }
  track_script {
    fulcrum_health
  }
}
`;
}

/** Where keepalived is, or undefined (Debian puts it in /usr/sbin, not on every PATH). */
export function keepalivedPath(exists: (path: string) => boolean): string | undefined {
  return ['/usr/sbin/keepalived', '/usr/bin/keepalived', '/usr/local/sbin/keepalived'].find(exists);
}
