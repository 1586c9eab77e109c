#!/usr/bin/env bash
# Stop the one-node Slurm cluster .ci/slurm-up.sh started (its daemons, by their pid files).
set -uo pipefail
for d in slurmd slurmctld; do
  pid=$(pgrep -x "$d" || true)
  [ -n "$pid" ] && kill $pid
done
exit 0
