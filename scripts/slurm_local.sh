#!/usr/bin/env bash
# A one-node Slurm on this machine, for the tests marked `slurm`.
#   bash scripts/slurm_local.sh          install if needed, start, wait until the node is idle
#   bash scripts/slurm_local.sh stop     stop the daemons
# Needs root (CI and the dev machines run as root). Installs Debian's slurm-wlm
# and munge when missing. Accounting is off, so `sacct` fails and tools fall
# back to `squeue`. State and spool live under $XORCH_SLURM_DIR (a temp folder).
# XORCH_SLURM_MIN_JOB_AGE sets MinJobAge, the seconds Slurm keeps a finished job
# (default 300, as in CI); a small value makes scontrol and squeue forget jobs
# soon after they end (slurmctld purges about once a minute), as a cluster
# without accounting does: the tests of jobs that Slurm no longer knows use it.
set -euo pipefail
dir=${XORCH_SLURM_DIR:-/tmp/xorch-slurm}
min_job_age=${XORCH_SLURM_MIN_JOB_AGE:-300}
conf=/etc/slurm/slurm.conf

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
}

if [ "${1:-start}" = stop ]; then
  stop
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi

stop
mkdir -p "$dir"/{state,spool,log} /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R root:root /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge
chmod 400 /etc/munge/munge.key
munged --force

node=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm
cat > "$conf" <<CONF
ClusterName=xorch
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=$min_job_age
Waittime=0
NodeName=$node CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld
slurmd
for _ in $(seq 60); do
  if sinfo -h -o '%t' 2>/dev/null | grep -qE '^idle'; then
    echo "slurm: node $node idle ($cpus CPUs, $mem_mb MB)"
    exit 0
  fi
  scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "slurm: the node did not become idle; see $dir/log" >&2
sinfo >&2 || true
exit 1
