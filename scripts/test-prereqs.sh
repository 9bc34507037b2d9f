#!/usr/bin/env bash
# Everything `npm test` needs on a machine of this project's kind (Debian, root, registries only),
# installed or started when missing, so the README's test command works on a fresh machine with
# nothing done by hand. Idempotent and quiet when all is there already. Runs as `pretest`.
#
# - promtool, the Prometheus server and Alertmanager (Debian packages prometheus and
#   prometheus-alertmanager): rule checks, rule unit tests, the real-Prometheus alert tests;
# - redis_exporter and postgres_exporter (Debian packages prometheus-redis-exporter and
#   prometheus-postgres-exporter): the data-store alerts in the real-Prometheus e2e;
# - Chromium (Debian package chromium): the console's browser tests;
# - PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379: started when down.
#
# A missing tool that cannot be installed stops the run here with the reason; no test is ever
# skipped silently because a tool is absent.
set -euo pipefail

log() { printf '[test-prereqs] %s\n' "$*" >&2; }

need_pkgs=()
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need_pkgs+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_pkgs+=(prometheus-alertmanager)
command -v prometheus-redis-exporter >/dev/null 2>&1 || need_pkgs+=(prometheus-redis-exporter)
command -v prometheus-postgres-exporter >/dev/null 2>&1 || need_pkgs+=(prometheus-postgres-exporter)
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)

if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing: ${need_pkgs[*]} (Debian packages); install them as root: apt-get install -y ${need_pkgs[*]}"
    exit 1
  fi
  log "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  # The packages start system services we do not want: the tests run their own servers on
  # ports of their own.
  (service prometheus stop; service prometheus-alertmanager stop; service prometheus-node-exporter stop) >/dev/null 2>&1 || true
  (service prometheus-redis-exporter stop; service prometheus-postgres-exporter stop) >/dev/null 2>&1 || true
  pkill -x prometheus >/dev/null 2>&1 || true
  pkill -x prometheus-alertmanager >/dev/null 2>&1 || true
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

if ! port_open 5432; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do port_open 5432 && break; sleep 1; done
fi
if ! port_open 6379; then
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 30); do port_open 6379 && break; sleep 1; done
fi
