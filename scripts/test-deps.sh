#!/usr/bin/env bash
# Installs what the test suite runs for real when it is missing: redis-server, memcached, haproxy, dig, keepalived
# (tests start their own instances on free loopback ports and stop them by PID; nothing here starts
# a service; haproxy is the peer of the PROXY protocol interop test) and Debian's Chromium (the
# dashboard's browser test drives it with playwright-core).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v memcached >/dev/null 2>&1 || need+=(memcached)
# /usr/sbin is not on every user's PATH: look where the test looks too.
{ command -v haproxy || [ -x /usr/sbin/haproxy ]; } >/dev/null 2>&1 || need+=(haproxy)
[ -x /usr/bin/chromium ] || need+=(chromium)
# dig (bind9-dnsutils): the DNS listener's end-to-end test queries it as a user would.
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
# keepalived: the redundancy test runs a real VRRP pair in network namespaces (as root; it skips
# otherwise). Debian puts it in /usr/sbin.
{ command -v keepalived || [ -x /usr/sbin/keepalived ]; } >/dev/null 2>&1 || need+=(keepalived)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "test-deps: missing ${need[*]}; install them (Debian: apt-get install ${need[*]})" >&2
    exit 1
  fi
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  echo "test-deps: installing ${need[*]}" >&2
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
