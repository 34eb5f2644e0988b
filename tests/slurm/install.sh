#!/usr/bin/env bash
# Install a single-node SLURM (Debian/Ubuntu packages) for tests/system/test_slurm.py; CI calls this as root.
# Package post-install scripts try to start the services, which fails without systemd: a temporary
# /usr/sbin/policy-rc.d that exits 101 keeps them from starting anything. The cluster itself is
# started by tests/slurm/start-cluster.sh.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "install.sh: must run as root (apt-get install)" >&2
    exit 1
fi

PACKAGES=(munge slurmctld slurmd slurm-client)

if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    echo "install.sh: SLURM already installed: $(slurmctld -V)"
    exit 0
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
fi
cleanup() { if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${PACKAGES[@]}"
echo "install.sh: installed $(slurmctld -V)"
