#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/start-cluster.sh (idempotent: a cluster that is not
# running is fine). Stops slurmd and slurmctld by their pid files, cancels jobs still queued, and
# undoes what start-cluster.sh created outside $HW5_SLURM_DIR: munged if it started it, the
# /dev/nvidia* device nodes it created, its links in /etc/slurm. Configuration and logs stay in
# $HW5_SLURM_DIR for inspection.
set -euo pipefail

DIR=${HW5_SLURM_DIR:-/tmp/hw5-slurm}
export SLURM_CONF=$DIR/slurm.conf

log() { echo "stop-cluster: $*"; }

stop_pidfile() { # name pidfile
    local name=$1 pidfile=$2 pid
    if [[ ! -s $pidfile ]]; then
        return 0
    fi
    pid=$(cat "$pidfile")
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) did not stop within 10 s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

if [[ -s $DIR/run/slurmctld.pid ]] && kill -0 "$(cat "$DIR/run/slurmctld.pid")" 2>/dev/null \
    && command -v scancel >/dev/null; then
    # Only this test cluster's jobs: SLURM_CONF points at its controller.
    timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
fi

stop_pidfile slurmd "$DIR/run/slurmd.pid"
stop_pidfile slurmctld "$DIR/run/slurmctld.pid"

if [[ -e $DIR/munged-started-by-us ]]; then
    stop_pidfile munged /run/munge/munged.pid
    rm -f "$DIR/munged-started-by-us"
fi
if [[ -e $DIR/devices-created-by-us ]]; then
    while read -r dev; do
        if [[ $dev == /dev/nvidia* && -c $dev ]]; then
            log "removing the device node $dev (created by start-cluster.sh)"
            rm -f "$dev"
        fi
    done <"$DIR/devices-created-by-us"
    rm -f "$DIR/devices-created-by-us"
fi
for f in slurm.conf gres.conf; do
    link=/etc/slurm/$f
    if [[ -L $link && $(readlink "$link") == "$DIR/$f" ]]; then
        rm -f "$link"
    fi
done
log "stopped (configuration and logs kept in $DIR)"
