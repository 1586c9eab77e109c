#!/usr/bin/env bash
# Stop the Slurm daemons .ci/slurm-up.sh started (none if the cluster was already up before it).
set -uo pipefail
marker=/run/normlab-slurm-started
[ -f "$marker" ] || exit 0
for d in $(sort -u "$marker"); do
  pid=$(pgrep -x "$d" || true)
  [ -n "$pid" ] && kill $pid
done
rm -f "$marker"
exit 0
