#!/usr/bin/env bash
# Builds (once) the Debian bookworm guest for the two-NUMA-node check: a debootstrap root
# filesystem with hmst's runtime libraries, numactl, OpenMPI and a kernel, packed into an ext4
# image. Everything lives under $NUMA_VM_DIR (default .build-numa-vm/, git-ignored); a rerun
# reuses it. Needs root (debootstrap chroots), debootstrap and e2fsprogs (mkfs.ext4 -d).
set -euo pipefail
DIR=${NUMA_VM_DIR:-.build-numa-vm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=$DIR/rootfs
IMG=$DIR/rootfs.ext4
# runtime deps of build/bin/hmst (ldd: libopenblas, libnuma, libgomp, libstdc++, zlib), the
# tools the guest check uses, OpenMPI for the per-rank check, and a kernel + initramfs
PACKAGES=linux-image-amd64,initramfs-tools,kmod,procps,numactl,libnuma1,libopenblas0,libgomp1,libstdc++6,zlib1g,python3,openmpi-bin

if [[ -f $IMG && -f $DIR/vmlinuz && -f $DIR/initrd.img ]]; then
  echo "numa-vm: reusing $IMG"; exit 0
fi
[[ $(id -u) == 0 ]] || { echo "numa-vm: building the image needs root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "numa-vm: apt-get install debootstrap" >&2; exit 1; }
mkdir -p "$DIR"

if [[ ! -f $ROOT/.debootstrap-done ]]; then
  rm -rf "$ROOT"
  echo "numa-vm: debootstrap bookworm into $ROOT (a few minutes)"
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOT" "$MIRROR"
  touch "$ROOT/.debootstrap-done"
fi

# The guest boots straight into our init (no systemd under slow emulation): it mounts the
# host's share (9p) and runs the check found there, so editing the check needs no rebuild.
cat > "$ROOT/sbin/hmst-guest-init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null; mkdir -p /dev/shm /dev/pts; mount -t tmpfs shm /dev/shm
mount -t tmpfs tmp /tmp; mount -t tmpfs run /run
hostname numa-vm
modprobe -q 9pnet_virtio; modprobe -q 9p
mkdir -p /share
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hmst /share; then
  cd /share && python3 /share/guest-check.py; echo "numa-vm: guest check exit $?"
else
  echo "numa-vm: could not mount the 9p share"
fi
sync
echo o > /proc/sysrq-trigger
sleep 30
INIT
chmod +x "$ROOT/sbin/hmst-guest-init"
echo "numa-vm" > "$ROOT/etc/hostname"

cp "$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -1)" "$DIR/vmlinuz"
cp "$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -1)" "$DIR/initrd.img"
chmod a+r "$DIR/vmlinuz" "$DIR/initrd.img"
rm -f "$IMG.tmp"
rm -f "$ROOT"/var/cache/apt/archives/*.deb
mkfs.ext4 -q -F -L hmstroot -d "$ROOT" "$IMG.tmp" 2G
mv "$IMG.tmp" "$IMG"
echo "numa-vm: image ready: $IMG ($(du -h "$IMG" | cut -f1) used)"
