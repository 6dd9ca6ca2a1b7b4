#!/usr/bin/env bash
# Two NUMA nodes, for real: boots an emulated machine with two nodes (one CPU and 2 GiB each)
# over a Debian bookworm image (build-image.sh) and runs guest-check.py there against the host's
# build/bin/hmst: system-info sees both nodes, each placement strategy puts a checkpoint's pages
# where it says, worker threads are pinned per node, and (when the tool has --numa-rank)
# `mpirun -np 2 hmst train --numa-rank` trains. Slow (TCG emulation), a correctness check only;
# CI does not run it.
#
#   make all && sudo tools/numa-vm/run.sh [LOG]     (default LOG: tools/numa-vm/last-run.log)
#
# Env: NUMA_VM_DIR (cache, default .build-numa-vm/), HMST_BIN (default build/bin/hmst),
#      HMST_MPI_BIN (a build with `train --numa-rank` for the mpirun check, if HMST_BIN lacks it),
#      NUMA_VM_ONLY=mpi (only the mpirun check), NUMA_VM_ACCEL (tcg, or kvm to use /dev/kvm when it works), NUMA_VM_TIMEOUT (s, 3600).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${NUMA_VM_DIR:-.build-numa-vm}
LOG=${1:-tools/numa-vm/last-run.log}
HMST=${HMST_BIN:-build/bin/hmst}
ACCEL=${NUMA_VM_ACCEL:-tcg}
[[ -x $HMST ]] || { echo "numa-vm: $HMST not found; build it first (make all)" >&2; exit 1; }
# Debian's packages, installed when missing (as root, like tools/setup-deps.sh)
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v debootstrap >/dev/null; then
  [[ $(id -u) == 0 ]] || { echo "numa-vm: apt-get install debootstrap qemu-system-x86 (as root)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap qemu-system-x86 >/dev/null
fi

bash tools/numa-vm/build-image.sh

# The share the guest mounts at /share (9p): the tool, the check and a micro checkpoint.
SHARE=$DIR/share
rm -rf "$SHARE" && mkdir -p "$SHARE/out"
cp "$HMST" "$SHARE/hmst"
# an hmst with --numa-rank (MPI training) for the mpirun check, if it is another build
if [[ -n ${HMST_MPI_BIN:-} ]]; then cp "$HMST_MPI_BIN" "$SHARE/hmst-mpi"; fi
if [[ ${NUMA_VM_ONLY:-} == mpi ]]; then touch "$SHARE/only-mpi"; fi  # skip the placement cases
cp tools/numa-vm/guest-check.py "$SHARE/"
"$HMST" init --size micro --seed 1 "$SHARE/ckpt" > /dev/null

case $ACCEL in
  kvm) ACCEL_ARGS=(-accel kvm -cpu host) ;;
  *)   ACCEL_ARGS=(-accel tcg,thread=multi -cpu max) ;;
esac
echo "numa-vm: booting ($ACCEL, 2 nodes x 1 CPU x 2 GiB); serial console -> $LOG"
set +e
{
  echo "# tools/numa-vm/run.sh, $(date -u +%FT%TZ), host $(uname -srm), $(qemu-system-x86_64 --version | head -1), accel $ACCEL"
  echo "# hmst: $("$HMST" --version) ($(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo '+changes'))${HMST_MPI_BIN:+, mpirun check with $HMST_MPI_BIN}"
  timeout "${NUMA_VM_TIMEOUT:-3600}" qemu-system-x86_64 "${ACCEL_ARGS[@]}" -machine q35 \
    -smp 2 -m 4G \
    -object memory-backend-ram,id=mem0,size=2G -object memory-backend-ram,id=mem1,size=2G \
    -numa node,nodeid=0,cpus=0,memdev=mem0 -numa node,nodeid=1,cpus=1,memdev=mem1 \
    -kernel "$DIR/vmlinuz" -initrd "$DIR/initrd.img" \
    -append "console=ttyS0 root=/dev/vda rw init=/sbin/hmst-guest-init panic=-1 quiet loglevel=3" \
    -drive "file=$DIR/rootfs.ext4,format=raw,if=virtio,snapshot=on" \
    -virtfs "local,path=$SHARE,mount_tag=hmst,security_model=none,id=hmst" \
    -display none -serial stdio -monitor none -no-reboot < /dev/null
  echo "# qemu exit $?"
} 2>&1 | sed -u 's/\r$//' | tee "$LOG"
set -e
if [[ ! -f $SHARE/out/result.json ]]; then
  echo "numa-vm: the guest wrote no result (see $LOG)" >&2; exit 1
fi
grep -E '^(CHECK|SUMMARY)' "$LOG"
! grep -q '^CHECK FAIL' "$LOG"
