#!/usr/bin/env bash
# Start a real single-node SLURM cluster for tests/system/test_slurm.py (and for trying the profile in
# profiles/slurm by hand). Needs root and the packages from tests/slurm/install.sh; installs nothing.
#
#   tests/slurm/start-cluster.sh          # idempotent: does nothing if the cluster is already up
#   source "${HW5_SLURM_DIR:-/tmp/hw5-slurm}/env.sh"   # exports SLURM_CONF for sbatch/squeue/...
#   tests/slurm/stop-cluster.sh
#
# Everything (slurm.conf, gres.conf, state, spool, logs, pid files, env.sh) lives in $HW5_SLURM_DIR
# (default /tmp/hw5-slurm). Outside it, the script only touches what SLURM itself needs: the munge
# key and /run/munge, an /etc/hosts line if the host name does not resolve, symbolic links
# /etc/slurm/{slurm,gres}.conf to its files (never replacing a real configuration), and
# /dev/nvidia0.. (character device nodes, created only if absent, so that the node can offer
# $HW5_SLURM_GPUS "GPUs" (default 2) as a GRES and `sbatch --gpus=1` is scheduled and gets
# CUDA_VISIBLE_DEVICES as on a real GPU node; there is no driver, so jobs see no CUDA and train on
# the CPU). stop-cluster.sh removes the links, the device nodes and munged it started.
#
# Partitions: main (Default=YES) and gpu, both on this one node. MinJobAge=600 keeps finished jobs
# visible to squeue/scontrol for 10 minutes, which Snakemake's SLURM executor needs when it polls
# with squeue (there is no slurmdbd, so sacct knows nothing).
set -euo pipefail

DIR=${HW5_SLURM_DIR:-/tmp/hw5-slurm}
TIMEOUT=${HW5_SLURM_TIMEOUT:-60}
GPUS=${HW5_SLURM_GPUS:-2}
CTLD_PORT=${HW5_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${HW5_SLURM_SLURMD_PORT:-6818}
CONF=$DIR/slurm.conf

log() { echo "start-cluster: $*"; }
die() {
    echo "start-cluster: ERROR: $*" >&2
    exit 1
}

missing=()
for cmd in munged mungekey munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if ((${#missing[@]})); then
    die "missing SLURM/munge programs: ${missing[*]}. Install them with tests/slurm/install.sh" \
        "(apt-get install munge slurmctld slurmd slurm-client)."
fi
[[ $(id -u) -eq 0 ]] || die "must run as root (starts munged, slurmctld and slurmd)"

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_env() {
    printf 'export SLURM_CONF=%q\n' "$CONF" >"$DIR/env.sh"
    log "cluster is up; to use it: source $DIR/env.sh   (export SLURM_CONF=$CONF)"
}

export SLURM_CONF=$CONF

# Snakemake's job step (snakemake-executor-plugin-slurm-jobstep 0.6) removes SLURM_CONF (like every
# SLURM_* variable but the job's identity) from the environment of the `srun` it runs inside each
# job, so srun reads the default /etc/slurm/slurm.conf. Link it (and gres.conf) to ours; refuse to
# replace a configuration that is not ours (a real cluster's).
link_default_conf() {
    mkdir -p /etc/slurm
    for f in slurm.conf gres.conf; do
        link=/etc/slurm/$f
        if [[ -L $link && $(readlink "$link") == "$DIR/$f" ]]; then
            continue
        elif [[ -e $link || -L $link ]]; then
            die "$link exists and is not a link to $DIR/$f: this machine has its own SLURM" \
                "configuration; not replacing it (use a machine or container without one)"
        fi
        ln -s "$DIR/$f" "$link"
    done
}

host=$(hostname -s)
# (--all: the CPUs of the machine, not $OMP_NUM_THREADS, which the test processes set to 1)
nproc=$(nproc --all)
mem_total_mib=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
# Leave the system some memory; the node offers the rest to jobs.
real_mem=$((mem_total_mib * 9 / 10))

wanted_conf=$(cat <<EOF
# Written by tests/slurm/start-cluster.sh: a single-node test cluster without cgroups or slurmdbd.
ClusterName=hw5
SlurmctldHost=$host
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MailProg=/bin/true
MinJobAge=600
KillWait=5
InactiveLimit=0
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$nproc RealMemory=$real_mem Gres=gpu:$GPUS State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host Default=NO MaxTime=INFINITE State=UP
EOF
)

# Already running with this configuration (second call): nothing to do.
if alive "$DIR/run/slurmctld.pid" && alive "$DIR/run/slurmd.pid" \
    && scontrol ping 2>/dev/null | grep -q UP \
    && [[ $(cat "$CONF" 2>/dev/null) == "$wanted_conf" ]]; then
    log "already running ($DIR)"
    link_default_conf
    write_env
    exit 0
fi
# Half-started leftovers or an older configuration: stop (by pid files) before starting afresh.
if alive "$DIR/run/slurmctld.pid" || alive "$DIR/run/slurmd.pid"; then
    log "stopping a running cluster with another configuration, or a half-started one, first"
    "$(dirname "${BASH_SOURCE[0]}")/stop-cluster.sh"
fi

mkdir -p "$DIR"

# --- host name -------------------------------------------------------------------------------
if ! getent hosts "$host" >/dev/null; then
    log "host name $host does not resolve: adding it to /etc/hosts"
    echo "127.0.0.1 $host" >>/etc/hosts
fi

# --- munge -----------------------------------------------------------------------------------
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 700 /etc/munge
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    log "starting munged"
    # --force: start even if a munged that died left its socket lock behind.
    runuser -u munge -- /usr/sbin/munged --force
    touch "$DIR/munged-started-by-us"
    for _ in $(seq 1 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null || die "munged does not answer (munge -n | unmunge failed)"
fi

# --- GPU device nodes for the GRES ----------------------------------------------------------
for ((i = 0; i < GPUS; i++)); do
    dev=/dev/nvidia$i
    if [[ ! -e $dev ]]; then
        log "creating the device node $dev (no driver: a schedulable GRES only)"
        mknod "$dev" c 195 "$i" || die "mknod $dev failed"
        echo "$dev" >>"$DIR/devices-created-by-us"
    fi
done

# --- configuration ---------------------------------------------------------------------------
rm -rf "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run/slurmctld.pid" "$DIR/run/slurmd.pid"
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"

printf '%s\n' "$wanted_conf" >"$CONF"
: >"$DIR/gres.conf"
for ((i = 0; i < GPUS; i++)); do
    echo "NodeName=$host Name=gpu File=/dev/nvidia$i" >>"$DIR/gres.conf"
done

link_default_conf

# --- daemons ---------------------------------------------------------------------------------
log "starting slurmctld and slurmd (config $CONF)"
slurmctld -i -f "$CONF"
slurmd -f "$CONF"

# A daemon's command returns once it has forked; the daemon writes its pid file a moment later
# (measured: often not yet there when `slurmd` returns). So a missing pid file means "still
# starting" for PIDFILE_GRACE seconds; a pid file whose process is gone means it exited.
PIDFILE_GRACE=${HW5_SLURM_PIDFILE_GRACE:-15}
daemon_problem() { # name pidfile
    if [[ ! -s $2 ]]; then
        ((SECONDS < started + PIDFILE_GRACE)) || echo "$1 wrote no pid file ($2) within ${PIDFILE_GRACE}s"
    elif ! kill -0 "$(cat "$2")" 2>/dev/null; then
        echo "$1 exited"
    fi
}
started=$SECONDS
deadline=$((SECONDS + TIMEOUT))
state=""
until scontrol ping 2>/dev/null | grep -q UP \
    && state=$(sinfo -h -N -n "$host" -o %T 2>/dev/null | head -n1) \
    && [[ $state == idle ]]; do
    problem=$(daemon_problem slurmctld "$DIR/run/slurmctld.pid")
    [[ -n $problem ]] || problem=$(daemon_problem slurmd "$DIR/run/slurmd.pid")
    if [[ -z $problem ]] && ((SECONDS >= deadline)); then
        problem="cluster not ready after ${TIMEOUT}s"
    fi
    if [[ -n $problem ]]; then
        echo "start-cluster: ERROR: $problem (scontrol ping: $(scontrol ping 2>&1 | head -n1);" \
            "node state: '${state}')" >&2
        for f in "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
            echo "--- last lines of $f" >&2
            tail -n 15 "$f" >&2 2>/dev/null || true
        done
        "$(dirname "${BASH_SOURCE[0]}")/stop-cluster.sh" >&2 || true
        exit 1
    fi
    sleep 0.5
done
log "node $host idle: partitions $(sinfo -h -o %P | tr '\n' ' ')"
write_env
