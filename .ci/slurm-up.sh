#!/usr/bin/env bash
# A one-node SLURM cluster for CI, started by hand (no systemd): munge, slurmctld and
# slurmd on localhost, N fake GPUs as gres (device files made with mknod), no accounting
# (run snakemake with --slurm-status-command squeue). Debian bookworm's slurm-wlm 22.05.
#   bash .ci/slurm-up.sh        start (installs slurm-wlm and munge when missing)
#   bash .ci/slurm-up.sh down   stop what this script started
# slurm.conf goes to /etc/slurm: the executor plugin's job step drops SLURM_CONF before
# its nested srun, so only the compiled-in location works without a wrapper.
set -euo pipefail
STATE=${SLURM_CI_STATE:-/tmp/imrl-slurm}
GPUS=${GPUS:-2}
CONF=/etc/slurm
SOCKET=$STATE/run/munge.socket   # its folder must be world-executable; the key folder private

stop() {  # TERM the pid in file $1, KILL after 10 s
  [ -s "$1" ] || return 0
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

if [ "${1:-up}" = down ]; then
  squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
  for daemon in slurmd slurmctld munged; do stop "$STATE/$daemon.pid"; done
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get install -y -q slurm-wlm munge >/dev/null; }
fi

mkdir -p "$STATE"/{munge,run,ctld,spool,log,dev} "$CONF"
chmod 700 "$STATE/munge"; chmod 755 "$STATE/run"
[ -s "$STATE/munge/munge.key" ] || mungekey -c -k "$STATE/munge/munge.key"
munged --key-file="$STATE/munge/munge.key" --socket="$SOCKET" --pid-file="$STATE/munged.pid" \
  --seed-file="$STATE/munge/seed" --log-file="$STATE/log/munged.log"

node_hw=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')
gres_line=""
if [ "$GPUS" -gt 0 ]; then
  for i in $(seq 0 $((GPUS - 1))); do
    [ -e "$STATE/dev/nvidia$i" ] || mknod "$STATE/dev/nvidia$i" c 195 "$i"
  done
  echo "NodeName=localhost Name=gpu File=$STATE/dev/nvidia[0-$((GPUS - 1))]" > "$CONF/gres.conf"
  gres_line="GresTypes=gpu"
  node_hw="$node_hw Gres=gpu:$GPUS"
fi
cat > "$CONF/slurm.conf" <<CONFEOF
ClusterName=imrl-ci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MinJobAge=300
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$gres_line
NodeName=localhost NodeAddr=127.0.0.1 $node_hw State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFEOF

slurmctld -f "$CONF/slurm.conf"
for _ in $(seq 120); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.25; done
slurmd -f "$CONF/slurm.conf" -N localhost
for _ in $(seq 120); do sinfo -h -o %T 2>/dev/null | grep -qx idle && break; sleep 0.25; done
sinfo -h -o %T | grep -qx idle || { echo "slurm node is not idle:" >&2; scontrol show node localhost >&2; exit 1; }
echo "slurm up: $(sinfo -h -o '%P %D %T %G')"
