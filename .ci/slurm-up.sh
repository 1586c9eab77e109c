#!/usr/bin/env bash
# Install (if needed) and start a one-node Slurm cluster on this machine, as root: munge, then
# slurmctld and slurmd (Debian 12's Slurm 22.05). Idempotent: a cluster that already answers is
# left as it is (and .ci/slurm-down.sh leaves it running). The executor tests
# (engine/jobs/slurm.test.ts) submit to it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
host=$(hostname)
if command -v sinfo >/dev/null && sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
  exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
# munge: a key readable only by the munge user, then the daemon.
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! pgrep -u munge -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
fi
cpus=$(nproc)
mem=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 8 / 10))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=normlab
SlurmctldHost=${host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
KillWait=10
MinJobAge=300
SchedulerParameters=sched_interval=1
NodeName=${host} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
# Remember what this script started, so slurm-down stops only that.
pgrep -x slurmctld >/dev/null || { /usr/sbin/slurmctld && echo slurmctld >>/run/normlab-slurm-started; }
pgrep -x slurmd >/dev/null || { /usr/sbin/slurmd && echo slurmd >>/run/normlab-slurm-started; }
for _ in $(seq 1 60); do
  if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then exit 0; fi
  sleep 0.5
done
echo "slurm-up: the node did not become idle; sinfo says: $(sinfo -h 2>&1 | head -1)" >&2
exit 1
