#!/usr/bin/env bash
# tests/kernel_lab/run.sh - run a command inside a throwaway qemu VM that boots Debian's stock
# kernel (linux-image-amd64), which has what this machine's kernel lacks: ipip, wireguard,
# esp4/xfrm with gcm(aes), dummy... (see docs in README.md beside this file).
#
# The VM's root file system is the host's own / (9p, read-only) under a RAM overlay: every host
# binary (bash, ip, wg, charon, etcd, the CNI plugins, deno) and the repository itself run
# unchanged at the same paths; writes go to guest RAM and are thrown away, except in the
# directories named in KLAB_SHARE_RW, which are the host's own. The command's stdout+stderr
# (merged) stream to this script's stdout; its exit status becomes this script's exit status.
# The VM has no network card: nothing it does can reach any network outside it.
# The kernel package is unpacked with dpkg -x into a cache: the host's /boot is never touched.
#
# usage: tests/kernel_lab/run.sh CMD [ARG...]      (CMD runs in the current directory)
#   e.g. tests/kernel_lab/run.sh bash -c 'ip link add t0 type ipip && ip -d link show t0'
#
# environment (all optional):
#   KLAB_DIR=/tmp/klab          cache: kernel, busybox, initramfs, run dirs (~510 MB)
#   KLAB_KERNEL_PKG=linux-image-amd64   Debian kernel package, meta or versioned
#                               (needs 9p: the -cloud-amd64 flavour has none)
#   KLAB_MODULES="..."          modules loaded before CMD (default below); any
#                               other module autoloads or can be modprobe'd
#   KLAB_MEM=2048 (MiB)  KLAB_CPUS=2  KLAB_TIMEOUT=600 (s, whole VM)
#   KLAB_BOOT_TIMEOUT=30 (s)    a VM not running CMD by then is killed and retried (3 tries)
#   KLAB_ACCEL=auto|kvm|tcg     auto: kvm only where kvm_intel/kvm_amd is loaded and /dev/kvm
#                               is writable (a paravirtual /dev/kvm makes stock kernels hang)
#   KLAB_SHARE_RW="dir ..."     absolute host dirs mounted read-write, same path
#   KLAB_ENV="VAR ..."          host variables passed into the VM
#   KLAB_DEBUG=1                show kernel console output and boot timings
#   KLAB_APPEND, KLAB_QEMU_ARGS, KLAB_CPU, KLAB_TB_MB   extra kernel args, extra
#                               qemu args, -cpu model, TCG translation cache MiB
# exit status:
#   CMD's own (a CMD status of 124 or 125 is reported as 123, so that these stay unambiguous);
#   124 when the VM ran past KLAB_TIMEOUT;
#   125 when no VM can be booted here (not root, qemu or the kernel cannot be installed, the VM
#       does not boot): one line "kernel-lab: cannot boot a VM here: <reason>" says why.
set -euo pipefail

KLAB_DIR=${KLAB_DIR:-/tmp/klab}
KLAB_KERNEL_PKG=${KLAB_KERNEL_PKG:-linux-image-amd64}
KLAB_MODULES=${KLAB_MODULES:-"veth bridge br_netfilter dummy tun ipip vxlan wireguard esp4 xfrm_user aesni_intel"}
KLAB_MEM=${KLAB_MEM:-2048}
KLAB_CPUS=${KLAB_CPUS:-2}
KLAB_TIMEOUT=${KLAB_TIMEOUT:-600}
KLAB_ACCEL=${KLAB_ACCEL:-auto}
KLAB_SHARE_RW=${KLAB_SHARE_RW:-}
KLAB_ENV=${KLAB_ENV:-}
KLAB_DEBUG=${KLAB_DEBUG:-}

die() { echo "kernel-lab: cannot boot a VM here: $*" >&2; exit 125; }
log() { [ -z "$KLAB_DEBUG" ] || echo "kernel-lab: $*" >&2; }
[ $# -ge 1 ] || die "usage: $0 CMD [ARG...]"
[ "$(id -u)" = 0 ] || die "must run as root (apt-get, 9p share of /)"
mkdir -p "$KLAB_DIR/debs" "$KLAB_DIR/runs" "$KLAB_DIR/kernel"

# ---- one-time setup, cached under $KLAB_DIR (locked: runs may be parallel) ----
exec 9> "$KLAB_DIR/.lock"; flock 9
apt_updated=
apt_update() { [ -n "$apt_updated" ] || apt-get update >/dev/null 2>&1 || true; apt_updated=1; }
need() { # command package
  command -v "$1" >/dev/null && return
  log "installing $2"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >/dev/null 2>&1 ||
    { apt_update; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >/dev/null; } ||
    die "cannot install $2"
}
need qemu-system-x86_64 qemu-system-x86
need depmod kmod
need modprobe kmod
need cpio cpio
need xz xz-utils

fetch_deb() { # package -> path of its .deb (downloaded once into $KLAB_DIR/debs)
  local f
  f=$(ls "$KLAB_DIR/debs/$1"_*.deb 2>/dev/null | head -1)
  if [ -z "$f" ]; then
    (cd "$KLAB_DIR/debs" && { apt-get download "$1" >/dev/null 2>&1 || { apt_update; apt-get download "$1" >/dev/null 2>&1; }; }) ||
      die "apt-get download $1 failed"
    f=$(ls "$KLAB_DIR/debs/$1"_*.deb | head -1)
  fi
  echo "$f"
}

extract_vmlinux() { # bzImage -> ELF vmlinux, as the kernel's scripts/extract-vmlinux does
  local magic tool off
  while read -r magic tool; do
    command -v "${tool%% *}" >/dev/null || continue
    for off in $(LC_ALL=C grep -abo "$(printf "$magic")" "$1" 2>/dev/null | head -3 | cut -d: -f1); do
      tail -c +$((off + 1)) "$1" | $tool > "$2" 2>/dev/null || true
      [ "$(head -c 4 "$2")" != $'\x7fELF' ] || return 0
    done
  done <<'MAGIC'
\xfd7zXZ xz -dc
\x28\xb5\x2f\xfd zstd -dc
\x1f\x8b\x08 gzip -dc
\x02\x21\x4c\x18 lz4 -dc
MAGIC
  rm -f "$2"; return 1
}

# resolve a meta package (linux-image-amd64) to the versioned one, once
pkgfile=$KLAB_DIR/kernel/$KLAB_KERNEL_PKG.pkg
if [ ! -s "$pkgfile" ]; then
  resolve() { # a meta package depends on another linux-image-*, a real image does not
    local p=$KLAB_KERNEL_PKG d
    apt-cache show "$p" >/dev/null 2>&1 || return 0
    for _ in 1 2 3; do
      d=$(apt-cache depends "$p" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
      [ -n "$d" ] || break; p=$d
    done
    echo "$p"
  }
  kpkg=$(resolve); [ -n "$kpkg" ] || { apt_update; kpkg=$(resolve); }
  [ -n "$kpkg" ] || die "cannot resolve kernel package $KLAB_KERNEL_PKG"
  echo "$kpkg" > "$pkgfile"
fi
kpkg=$(cat "$pkgfile")
KROOT=$KLAB_DIR/kernel/$kpkg
if [ ! -e "$KROOT/.ok" ]; then
  log "extracting $kpkg"
  rm -rf "$KROOT"; mkdir -p "$KROOT"
  dpkg -x "$(fetch_deb "$kpkg")" "$KROOT"     # no maintainer scripts: host /boot untouched
  kv=$(ls "$KROOT/lib/modules")
  depmod -b "$KROOT" "$kv"
  # uncompressed vmlinux: qemu boots it through its PVH entry point, which
  # skips the kernel's own decompressor (about 3 s under TCG)
  extract_vmlinux "$KROOT/boot/vmlinuz-$kv" "$KROOT/vmlinux" || log "no vmlinux: booting the bzImage"
  touch "$KROOT/.ok"
fi
KV=$(ls "$KROOT/lib/modules")
KERNEL=$KROOT/vmlinux; [ -s "$KERNEL" ] || KERNEL=$KROOT/boot/vmlinuz-$KV
MODDIR=$KROOT/lib/modules/$KV
ls "$MODDIR"/kernel/fs/9p/9p.ko* >/dev/null 2>&1 || die "$kpkg has no 9p module (use linux-image-amd64, not -cloud)"

BB=$KLAB_DIR/busybox/bin/busybox   # busybox-static, unpacked only (the package would replace busybox)
[ -x "$BB" ] || { mkdir -p "$KLAB_DIR/busybox"; dpkg -x "$(fetch_deb busybox-static)" "$KLAB_DIR/busybox"; }

# initramfs: static busybox, the modules to mount 9p and overlayfs, /init
INIT_VERSION=f1
INITRD=$KLAB_DIR/initrd-flannel-$KV.gz
if [ "$(cat "$INITRD.v" 2>/dev/null)" != "$INIT_VERSION" ] || [ ! -f "$INITRD" ]; then
  log "building $INITRD"
  t=$(mktemp -d "$KLAB_DIR/initrd.XXXXXX")
  mkdir -p "$t"/{bin,sbin,dev,proc,sys,host,newroot,rw,klabio} "$t/lib/modules/$KV"
  cp "$BB" "$t/bin/busybox"
  for a in sh mount mkdir mknod insmod modprobe chroot poweroff cat cut echo dmesg stty sync ip hostname; do ln -s busybox "$t/bin/$a"; done
  ln -s ../bin/busybox "$t/sbin/modprobe"        # the kernel's request_module helper
  : > "$t/bootmods"
  for m in virtio_mmio 9pnet_virtio 9p overlay; do
    modprobe -d "$KROOT" -S "$KV" --show-depends "$m" | awk '$1 == "insmod" {print $2}' |
    while read -r p; do
      rel=${p#"$MODDIR"/}
      grep -qxF "$rel" "$t/bootmods" && continue
      mkdir -p "$t/lib/modules/$KV/$(dirname "$rel")"; cp "$p" "$t/lib/modules/$KV/$rel"
      echo "$rel" >> "$t/bootmods"
    done
  done
  cat > "$t/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
KV=$(cat /proc/sys/kernel/osrelease)
for m in $(cat /bootmods); do insmod /lib/modules/$KV/$m; done
fail() { echo "klab-init: $*"; echo "$*" > /klabio/initfail 2>/dev/null; sync; poweroff -f; }
t() { echo "klab-time: $* $(cut -d' ' -f1 /proc/uptime)"; }
o9p=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $o9p,cache=none klabio /klabio || fail "mount klabio"
. /klabio/vm.env
[ -n "$KLAB_DEBUG" ] || dmesg -n 1
stty -onlcr 2>/dev/null
t init
mount -t 9p -o $o9p,ro,cache=loose hostroot /host || fail "mount host /"
mount -t tmpfs -o mode=755 rw /rw && mkdir /rw/upper /rw/work
R=/newroot
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work root $R || fail "mount overlay"
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys; mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm; mount -t devpts devpts $R/dev/pts; mount -t tmpfs shm $R/dev/shm
# static nodes whose open autoloads the module (what udev/kmod static-nodes do)
mkdir -p /dev/net; mknod /dev/net/tun c 10 200; mknod /dev/fuse c 10 229; mknod /dev/ppp c 108 0
mount -t tmpfs run $R/run
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
# the full module tree, from the host: for busybox modprobe here (the kernel's
# autoload) and for kmod's modprobe in the chroot
mount --bind /host$KLAB_MODDIR /lib/modules/$KV
mkdir -p $R/lib/modules/$KV && mount --bind /host$KLAB_MODDIR $R/lib/modules/$KV
mkdir -p $R$KLAB_RUN && mount --bind /klabio $R$KLAB_RUN
i=0; for d in $KLAB_SHARE_RW; do mount -t 9p -o $o9p,cache=none rw$i $R$d || fail "mount $d"; i=$((i+1)); done
hostname klab; ip link set lo up
t mounted
for m in $KLAB_MODULES; do modprobe $m || echo "klab-init: modprobe $m failed"; done
t modules
: > /klabio/booted
echo "@@KLAB-BEGIN@@"
chroot $R /usr/bin/env -i /bin/bash $KLAB_RUN/cmd </dev/null
rc=$?
echo "@@KLAB-END@@ rc=$rc"
echo $rc > /klabio/exit
sync; poweroff -f
INIT
  chmod +x "$t/init"
  (cd "$t" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"; echo "$INIT_VERSION" > "$INITRD.v"; rm -rf "$t"
fi

flock -u 9; exec 9>&-

# ---- this run ------------------------------------------------------------------
RUN=$(mktemp -d "$KLAB_DIR/runs/run.XXXXXX")
cleanup() { # stop a qemu of ours that is still running, then drop the run dir
  local pid; pid=$(cat "$RUN/qemu.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && grep -q qemu-system "/proc/$pid/comm" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM
q() { printf '%q' "$1"; }
{
  echo "KLAB_RUN=$(q "$RUN")"
  echo "KLAB_MODDIR=$(q "$MODDIR")"
  echo "KLAB_MODULES=$(q "$KLAB_MODULES")"
  echo "KLAB_SHARE_RW=$(q "$KLAB_SHARE_RW")"
  echo "KLAB_DEBUG=$(q "$KLAB_DEBUG")"
} > "$RUN/vm.env"
{
  echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8 KLAB_VM=1"
  for v in $KLAB_ENV; do [ -z "${!v+x}" ] || echo "export $v=$(q "${!v}")"; done
  echo "cd $(q "$PWD") || { echo \"cannot cd to $(q "$PWD") in the VM\" > $(q "$RUN/initfail"); exit 125; }"
  printf 'exec'; for a in "$@"; do printf ' %s' "$(q "$a")"; done; echo
} > "$RUN/cmd"

accel=$KLAB_ACCEL
if [ "$accel" = auto ]; then
  accel=tcg
  if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then accel=kvm; fi
fi
cpu=${KLAB_CPU:-max}; [ "$accel" = kvm ] && cpu=${KLAB_CPU:-host}
# TCG's translation cache defaults to 1 GiB of host memory; 256 MiB is as fast here
accel_opt=$accel; [ "$accel" = kvm ] || accel_opt="tcg,tb-size=${KLAB_TB_MB:-256}"
# Under TCG the guest TSC runs at the host's TSC rate. microvm has no HPET or
# PM timer, and calibrating against the PIT fails now and then under TCG (the
# boot then hangs after "tsc: Marking TSC unstable"): hand the kernel the rate.
tsc=""
if [ "$accel" = tcg ]; then
  khz=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
  [ -z "$khz" ] || tsc="tsc_early_khz=$khz tsc=reliable "
fi
fs9p() { # id host-dir tag [readonly]
  args+=(-fsdev "local,id=$1,path=$2,security_model=none,multidevs=remap${4:+,readonly=on}"
         -device "virtio-9p-device,fsdev=$1,mount_tag=$3")
}
verbosity="quiet loglevel=1"; [ -z "$KLAB_DEBUG" ] || verbosity="earlyprintk=ttyS0 loglevel=7"
args=(-M microvm,acpi=on -nodefaults -no-user-config -no-reboot -display none -serial stdio
  -accel "$accel_opt" -cpu "$cpu" -m "$KLAB_MEM" -smp "$KLAB_CPUS"
  -kernel "$KERNEL" -initrd "$INITRD"
  -append "console=ttyS0 $verbosity ${tsc}panic=-1 mitigations=off cryptomgr.notests ${KLAB_APPEND:-}"
  -device virtio-rng-device)
# shellcheck disable=SC2206
args+=(${KLAB_QEMU_ARGS:-})
fs9p f0 / hostroot ro
fs9p f1 "$RUN" klabio
i=0
for d in $KLAB_SHARE_RW; do
  [[ $d = /* ]] && [ -d "$d" ] || die "KLAB_SHARE_RW: $d is not an absolute directory"
  fs9p "r$i" "$d" "rw$i"; i=$((i + 1))
done
log "qemu-system-x86_64 ${args[*]}"

filter() { # without KLAB_DEBUG, show only what CMD wrote: the text between the markers
  if [ -n "$KLAB_DEBUG" ]; then tee "$RUN/console"; return; fi
  tee "$RUN/console" | awk 'on { i = index($0, "@@KLAB-END@@"); if (i) { if (i > 1) printf "%s", substr($0, 1, i - 1); on = 0; next }
            print; fflush(); next }
       /^@@KLAB-BEGIN@@/ { on = 1; next }
       /klab-init:|Kernel panic/ { print > "/dev/stderr" }'
}
# A boot that has not reached CMD within KLAB_BOOT_TIMEOUT seconds is killed
# and retried: a TCG boot still hangs now and then (2 in about 560 boots here).
KLAB_BOOT_TIMEOUT=${KLAB_BOOT_TIMEOUT:-30}
start=$SECONDS
for try in 1 2 3; do
  rm -f "$RUN/booted" "$RUN/exit" "$RUN/initfail" "$RUN/qrc" "$RUN/qemu.pid"
  left=$((KLAB_TIMEOUT - (SECONDS - start))); [ "$left" -gt 0 ] || left=1
  { rc=0; timeout "$left" qemu-system-x86_64 "${args[@]}" -pidfile "$RUN/qemu.pid" </dev/null || rc=$?
    { echo "$rc" > "$RUN/qrc"; } 2>/dev/null; } | filter &
  pipe=$!
  boot_deadline=$((SECONDS + KLAB_BOOT_TIMEOUT))
  while [ ! -e "$RUN/booted" ] && kill -0 "$pipe" 2>/dev/null && [ "$SECONDS" -lt "$boot_deadline" ]; do sleep 0.2; done
  if [ ! -e "$RUN/booted" ] && kill -0 "$pipe" 2>/dev/null; then
    echo "kernel-lab: VM did not boot within ${KLAB_BOOT_TIMEOUT}s (try $try), killing it; console in $KLAB_DIR/boot-hang.log" >&2
    [ ! -s "$RUN/qemu.pid" ] || kill "$(cat "$RUN/qemu.pid")" 2>/dev/null || true
    wait || true
    cp "$RUN/console" "$KLAB_DIR/boot-hang.log" 2>/dev/null || true
    continue
  fi
  wait || true     # the whole pipeline, so that $RUN/qrc is written
  break
done
qrc=$(cat "$RUN/qrc" 2>/dev/null || echo unknown)
[ "$qrc" != 124 ] || { echo "kernel-lab: timed out after ${KLAB_TIMEOUT}s" >&2; exit 124; }
[ ! -s "$RUN/initfail" ] || die "the VM's init failed: $(cat "$RUN/initfail")"
if [ -s "$RUN/exit" ]; then
  rc=$(cat "$RUN/exit")
  case $rc in
    124 | 125) echo "kernel-lab: the command exited with $rc, reported as 123" >&2; exit 123 ;;
    *) exit "$rc" ;;
  esac
fi
[ -e "$RUN/booted" ] || die "the VM did not boot (tries: $try, qemu status: $qrc; rerun with KLAB_DEBUG=1)"
echo "kernel-lab: the VM booted but ended without the command's exit status (qemu rc=$qrc; a guest panic or OOM?); last console lines:" >&2
tail -n 20 "$RUN/console" >&2 2>/dev/null || true
exit 1
