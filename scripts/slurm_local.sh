#!/usr/bin/env bash
# A single-node Slurm on localhost, for eagerbench's Slurm executor tests (and for trying
# `eagerbench run --executor slurm` without a cluster).
#
#   scripts/slurm_local.sh up       install (apt-get, as root) and start munge, slurmctld, slurmd
#   scripts/slurm_local.sh down     stop them and remove the cluster's state
#   scripts/slurm_local.sh status   exit 0 when the cluster answers
#   scripts/slurm_local.sh env      the line to source: export SLURM_CONF=...
#
# Everything lives in $EAGERBENCH_SLURM_DIR (default /tmp/eagerbench-slurm), configured by its own
# slurm.conf: a machine's own /etc/slurm is never read or written. The one partition, `debug`,
# gives every job a whole node (OverSubscribe=EXCLUSIVE), as a benchmark needs. Accounting is
# off (no slurmdbd): eagerbench reads job states with squeue, not sacct.
set -euo pipefail

DIR="${EAGERBENCH_SLURM_DIR:-/tmp/eagerbench-slurm}"
CONF="$DIR/slurm.conf"
export SLURM_CONF="$CONF"

say() { echo "slurm_local: $*" >&2; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null && command -v sbatch >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        say "slurmctld, slurmd, munge and slurm-client are missing, and installing them needs root"
        return 1
    fi
    say "installing slurmctld slurmd munge slurm-client (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd munge slurm-client \
        >"$DIR/apt.log" 2>&1 || { say "apt-get failed; see $DIR/apt.log"; return 1; }
}

start_munge() {
    if munge -n </dev/null >/dev/null 2>&1; then return 0; fi
    if [ ! -s /etc/munge/munge.key ]; then
        (command -v mungekey >/dev/null && mungekey --create --keyfile=/etc/munge/munge.key) \
            || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- munged --force
    for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && return 0; sleep 0.1; done
    say "munged did not start"; return 1
}

write_conf() {
    local node cpus memory
    node="$(hostname -s)"
    cpus="$(nproc)"
    memory="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat >"$CONF" <<EOF
ClusterName=eagerbench-local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${EAGERBENCH_SLURMCTLD_PORT:-16817}
SlurmdPort=${EAGERBENCH_SLURMD_PORT:-16818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=EXCLUSIVE
EOF
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The cluster answers: both daemons run and the node takes jobs (sinfo retries for a minute
# when slurmctld is down, hence the check of the daemons first, and the timeout).
answers() {
    alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" \
        && timeout 10 sinfo --noheader -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

up() {
    mkdir -p "$DIR"
    if answers; then say "already up ($CONF)"; return 0; fi
    install_packages
    start_munge
    write_conf
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    for _ in $(seq 100); do
        if answers; then say "up: partition debug on $(hostname -s); export SLURM_CONF=$CONF"; return 0; fi
        sleep 0.2
    done
    say "the node did not come up; logs in $DIR/log"; tail -5 "$DIR/log/"*.log >&2 || true
    return 1
}

down() {
    local pidfile
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
        if [ -s "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
    done
    sleep 1
    rm -rf "$DIR"
    say "down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) answers ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
