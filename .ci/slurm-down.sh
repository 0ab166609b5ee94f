#!/usr/bin/env bash
# Stop the single-node SLURM cluster that .ci/slurm-up.sh started: cancel all
# jobs, then stop slurmd and slurmctld.  munged is left running.
#
#   bash .ci/slurm-down.sh
set -uo pipefail

say() { echo "slurm-down: $*"; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "slurm-down: not root and no password-less sudo" >&2
    exit 2
fi
as_root() { "${SUDO[@]}" "$@"; }

# 1. Cancel every job, then give the tasks KillWait (5 s) + a margin to go.
if command -v squeue >/dev/null 2>&1 && jobs=$(timeout 10 squeue -h -o %A 2>/dev/null); then
    if [ -n "$jobs" ]; then
        say "cancelling $(wc -w <<<"$jobs") job(s)"
        # shellcheck disable=SC2086
        as_root scancel $jobs 2>/dev/null || true
        for _ in $(seq 1 30); do
            [ -z "$(timeout 10 squeue -h -o %A 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

# 2. Stop slurmd and slurmctld (SIGTERM, then SIGKILL after 10 s).
stop() { # pidfile name
    local pid
    pid=$(as_root cat "$1" 2>/dev/null) || pid=""
    if [ -z "$pid" ] || ! as_root kill -0 "$pid" 2>/dev/null || ! grep -qsx "$2" "/proc/$pid/comm"; then
        pid=$(pgrep -x "$2" | head -n 1) || pid=""
    fi
    [ -n "$pid" ] || return 0
    say "stopping $2 (pid $pid)"
    as_root kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        as_root kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "$2 still there after 10 s; SIGKILL"
    as_root kill -9 "$pid" 2>/dev/null || true
}
stop /run/slurmd.pid slurmd
stop /run/slurmctld.pid slurmctld
say "done"
