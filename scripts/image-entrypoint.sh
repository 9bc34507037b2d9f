#!/bin/sh
# The image's entry point (Dockerfile ENTRYPOINT; `npm run build` copies it to build/entrypoint.sh):
# sizes V8's heap from the container's memory limit, then execs node on the bundle beside it, so
# node is PID 1 and gets the signals.
#
# The limit comes from MEMORY_LIMIT_MIB (the Deployments set it from the downward API,
# resourceFieldRef limits.memory in MiB), else from the cgroup (memory.max, v2; v1's
# memory.limit_in_bytes), else there is none and V8 keeps its own default. V8's whole heap
# (heap_size_limit: old space plus the young generation, 3 x the 8 MiB semi-space the image sets
# in NODE_OPTIONS) gets 75% of the limit; the rest is for what lives outside it (buffers, the
# tokenizer's tables, code, glibc's arenas).
set -eu

YOUNG_GENERATION_MIB=24
MIN_OLD_SPACE_MIB=64

limit_mib=""
if [ -n "${MEMORY_LIMIT_MIB:-}" ]; then
  case "$MEMORY_LIMIT_MIB" in
    ''|*[!0-9]*)
      echo "promptmesh: configuration error: MEMORY_LIMIT_MIB must be a whole number of MiB, got '$MEMORY_LIMIT_MIB'" >&2
      exit 1
      ;;
  esac
  limit_mib=$MEMORY_LIMIT_MIB
else
  for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
    if [ -r "$f" ]; then
      bytes=$(cat "$f")
      case "$bytes" in
        ''|*[!0-9]*) ;;  # "max": no limit
        *) if [ ${#bytes} -le 15 ]; then limit_mib=$((bytes / 1048576)); fi ;;  # v1 reports ~2^63 for none
      esac
      break
    fi
  done
fi

heap_flag=""
if [ -n "$limit_mib" ] && [ "$limit_mib" -gt 0 ]; then
  old_space=$((limit_mib * 3 / 4 - YOUNG_GENERATION_MIB))
  if [ "$old_space" -lt "$MIN_OLD_SPACE_MIB" ]; then old_space=$MIN_OLD_SPACE_MIB; fi
  heap_flag="--max-old-space-size=$old_space"
fi

here=$(dirname "$0")
# No --enable-source-maps: the first error stack a process formats (a stream destroyed with an
# error is enough) would parse the bundle's 3 MB source map, ~30 MB of RSS for good and a ~0.5 s
# stall (measured, docs/bench.md). Stack traces keep the functions' names (the bundle's
# identifiers are not minified); build/service.js.map beside the bundle maps them offline, and
# NODE_OPTIONS=--enable-source-maps turns the mapping back on.
# shellcheck disable=SC2086 # heap_flag is one flag or nothing
exec node $heap_flag "$here/service.js" "$@"
