#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (localhost), for tests that
# submit `sbatch --array` jobs.
#
#   bash .ci/slurm-up.sh
#
# Idempotent: exits 0 at once when `sinfo` already shows a usable node and
# `squeue` answers.  Otherwise (as root, or with password-less sudo) it installs
# Debian's `slurm-wlm` + `munge` if they are missing, makes a munge key if there
# is none, starts munged, writes /etc/slurm/slurm.conf (one node with this
# machine's CPUs, partition `debug`, select/cons_tres + CR_Core so that 1-CPU
# array tasks run in parallel, one per core; no accounting) and starts slurmctld
# and slurmd as plain daemons (no systemd needed).
#
# Exit status: 0 when the cluster answers; 2 (with a one-line reason on stderr)
# when it cannot be set up, so callers can skip their SLURM tests.
# Stop it again with .ci/slurm-down.sh (munged is left running).
set -uo pipefail

say() { echo "slurm-up: $*"; }
fail() { echo "slurm-up: $*" >&2; exit 2; }

CONF=/etc/slurm/slurm.conf
LOGDIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
WAIT_S=${SLURM_UP_WAIT_S:-30}

# Node states in which jobs can be scheduled.
usable_state() {
    case "$1" in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

# Prints the node state (first line of `sinfo -h -o %T`), empty when no answer.
# $1: seconds to wait for an answer (sinfo retries ~9 s when no slurmctld listens;
# a live one answers in milliseconds).
node_state() {
    command -v sinfo >/dev/null 2>&1 || return 0
    timeout "${1:-10}" sinfo -h -o %T 2>/dev/null | head -n 1 | tr -d ' '
}

healthy() {
    local st pid
    # Our own config: both daemons must run here (sinfo would still show a
    # dead slurmd's node idle for SlurmdTimeout, and without a slurmctld it
    # retries ~9 s before it fails).
    if grep -qs 'Written by .ci/slurm-up.sh' "$CONF"; then
        pid=$(cat "$CTLD_PID" 2>/dev/null) || return 1
        grep -qsx slurmctld "/proc/$pid/comm" || return 1
        pid=$(cat "$SLURMD_PID" 2>/dev/null) || return 1
        grep -qsx slurmd "/proc/$pid/comm" || return 1
    fi
    st=$(node_state 3)
    usable_state "$st" && timeout 3 squeue -h >/dev/null 2>&1
}

# ---- 0. already up? ---------------------------------------------------------
if healthy; then
    say "cluster already up (node $(node_state 3)); nothing to do"
    exit 0
fi

# ---- privileges -------------------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    fail "cannot set up SLURM (not root and no password-less sudo)"
fi
as_root() { "${SUDO[@]}" "$@"; }

# Is the process named in pidfile $1 alive (and is it $2)?
alive() {
    local pid
    pid=$(as_root cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] || return 1
    as_root kill -0 "$pid" 2>/dev/null || return 1
    grep -qsx "$2" "/proc/$pid/comm"
}

# ---- 1. packages ------------------------------------------------------------
if ! command -v sbatch >/dev/null 2>&1 || ! command -v slurmctld >/dev/null 2>&1 ||
    ! command -v slurmd >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || fail "cannot install slurm-wlm (no apt-get)"
    say "installing slurm-wlm munge (apt-get) ..."
    log=$(mktemp /tmp/slurm-up-apt.XXXXXX)
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$log" 2>&1; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >>"$log" 2>&1 ||
            fail "cannot install slurm-wlm munge (apt-get failed; see $log)"
    fi
    rm -f "$log"
    if ! command -v sbatch >/dev/null 2>&1 || ! command -v slurmctld >/dev/null 2>&1; then
        fail "slurm-wlm installed but sbatch/slurmctld not found on PATH"
    fi
fi

# ---- 2. munge ---------------------------------------------------------------
MUNGE_USER=munge
id "$MUNGE_USER" >/dev/null 2>&1 || MUNGE_USER=root
as_root mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
as_root chown "$MUNGE_USER:" /etc/munge /run/munge /var/lib/munge /var/log/munge
as_root chmod 700 /etc/munge /var/log/munge
as_root chmod 755 /run/munge
as_root chmod 711 /var/lib/munge
if ! as_root test -s /etc/munge/munge.key; then
    say "generating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        as_root mungekey --create --keyfile=/etc/munge/munge.key --force >/dev/null 2>&1
    fi
    as_root test -s /etc/munge/munge.key ||
        as_root dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
as_root chown "$MUNGE_USER:" /etc/munge/munge.key
as_root chmod 400 /etc/munge/munge.key

if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    if [ "$MUNGE_USER" = root ]; then
        as_root /usr/sbin/munged --force
    else
        as_root runuser -u "$MUNGE_USER" -- /usr/sbin/munged 2>/dev/null ||
            as_root /usr/sbin/munged --force
    fi
    for _ in $(seq 1 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 ||
        fail "munged does not answer (see /var/log/munge/munged.log)"
fi

# ---- 3. slurm.conf ----------------------------------------------------------
HOST=$(hostname -s)
NCPU=$(nproc)
# Topology as slurmd sees it (sockets/cores/threads), memory a bit below it.
NODE_LINE=$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -n 1)
MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")
if [ -n "$NODE_LINE" ] && [ -n "$MEM" ]; then
    MEM=$((MEM * 95 / 100))
    NODE_LINE=$(sed -e "s/^NodeName=[^ ]*/NodeName=$HOST/" -e "s/RealMemory=[0-9]*/RealMemory=$MEM/" \
        <<<"$NODE_LINE")
else
    MEM=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.95 }' /proc/meminfo)
    NODE_LINE="NodeName=$HOST CPUs=$NCPU RealMemory=${MEM:-1000}"
fi
NODE_LINE="$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN"

new_conf=$(mktemp /tmp/slurm-up-conf.XXXXXX)
cat >"$new_conf" <<EOF
# Written by .ci/slurm-up.sh (advlab CI): a single-node cluster on localhost.
ClusterName=advlab
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Short timeouts: a CI cluster, not a production one.
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=30
Waittime=0
MessageTimeout=10
# Scheduling: consumable cores, so 1-CPU array tasks share the node.
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# No accounting (no slurmdbd): sacct has nothing.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$NODE_LINE
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
conf_changed=0
if ! as_root cmp -s "$new_conf" "$CONF"; then
    conf_changed=1
    as_root mkdir -p /etc/slurm
    if as_root test -e "$CONF" && ! as_root grep -q 'Written by .ci/slurm-up.sh' "$CONF"; then
        say "keeping the previous $CONF as $CONF.orig"
        as_root cp -f "$CONF" "$CONF.orig"
    fi
    say "writing $CONF ($NODE_LINE)"
    as_root install -m 644 "$new_conf" "$CONF"
fi
rm -f "$new_conf"

# ---- 4. daemons -------------------------------------------------------------
as_root mkdir -p /var/spool/slurmctld /var/spool/slurmd "$LOGDIR"
as_root chmod 755 /var/spool/slurmctld /var/spool/slurmd

stop_pidfile() {
    local pid
    pid=$(as_root cat "$1" 2>/dev/null) || return 0
    as_root kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        as_root kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    as_root kill -9 "$pid" 2>/dev/null || true
}

if [ "$conf_changed" = 1 ]; then
    # Daemons running with another configuration: restart them.
    if alive "$SLURMD_PID" slurmd; then say "restarting slurmd (new config)"; stop_pidfile "$SLURMD_PID"; fi
    if alive "$CTLD_PID" slurmctld; then say "restarting slurmctld (new config)"; stop_pidfile "$CTLD_PID"; fi
fi

if ! alive "$CTLD_PID" slurmctld; then
    say "starting slurmctld"
    as_root /usr/sbin/slurmctld -f "$CONF" ||
        fail "slurmctld did not start (see $LOGDIR/slurmctld.log)"
fi
if ! alive "$SLURMD_PID" slurmd; then
    say "starting slurmd"
    as_root /usr/sbin/slurmd -f "$CONF" ||
        fail "slurmd did not start (see $LOGDIR/slurmd.log)"
fi

# ---- 5. wait for an idle node -----------------------------------------------
say "waiting (up to ${WAIT_S}s) for node $HOST"
deadline=$((SECONDS + WAIT_S))
st=""
while [ "$SECONDS" -lt "$deadline" ]; do
    st=$(node_state 5)
    if usable_state "$st" && timeout 10 squeue -h >/dev/null 2>&1; then
        say "cluster up: node $HOST $st, partition debug ($NCPU CPUs) after ${SECONDS}s"
        exit 0
    fi
    case "$st" in
        down* | drain* | fail*)
            as_root scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
            ;;
    esac
    sleep 0.5
done
fail "cluster did not come up within ${WAIT_S}s (node state: '${st:-no answer}'; see $LOGDIR/slurmctld.log, $LOGDIR/slurmd.log)"
