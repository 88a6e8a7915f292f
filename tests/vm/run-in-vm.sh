#!/usr/bin/env bash
# run-in-vm.sh: run one host command inside a Linux kernel that has kprobe events.
#
#   tests/vm/run-in-vm.sh [--setup] [-k 6.12|6.1|PKG] [-t SECS] [-e VAR[=VAL]]... [-s DIR] [-v] [-q]
#                         -- CMD [ARGS...]
#
# Why: the development and CI machines run a kernel without kprobe_events, so the kprobe tier
# of the test suite runs in Debian 12's own kernels under QEMU with software emulation (TCG;
# KVM on these hosts is a nested PVM hypervisor that cannot run a stock kernel): 6.12
# (linux-image-6.12-amd64, bookworm-security; it can map the ring buffer) and 6.1, the kernel
# a Debian 12 machine boots by default (linux-image-amd64, bookworm and bookworm-security).
#
# How: the kernel .deb is downloaded and unpacked into a cache, never installed. A small
# busybox initramfs loads the virtio/9p modules, mounts the host's root filesystem read-only
# over virtio-9p, mounts the repository (DIR) read-write over it at the same absolute path,
# gives the guest its own /proc, /sys, tracefs at /sys/kernel/tracing, /dev, /tmp and /run,
# then chroots into the host root and runs CMD there. Host binaries, dynamically linked ones
# (cargo test executables under target/) included, therefore run unchanged.
#
# Options:
#   --setup           only prepare: install host packages, fetch the kernel, build the initramfs
#   -k, --kernel K    the guest kernel: 6.12 (default, or $WASMPROBE_VM_KERNEL), 6.1, or an exact
#                     linux-image-* package name; each is cached on its own
#   -t, --timeout S   stop the VM after S seconds (default $WASMPROBE_VM_TIMEOUT or 900); exit 124
#   -e, --env V=X     set V=X in the guest; "-e V" passes the host's value of V (repeatable)
#   -s, --share DIR   the directory shared read-write (default: the git top level of this script)
#   -v, --verbose     copy the guest's serial console (kernel messages) to stderr while it runs
#   -q, --quiet       no progress lines from this script on stderr
#
# In the guest: KP_IN_VM=1; PATH and HOME as on the host; the working directory is the host's
# $PWD if the guest can see it, else DIR. The host's /tmp is NOT visible (the guest has its own
# tmpfs there): keep whatever the command needs under DIR or elsewhere on the root filesystem.
# Only DIR, the guest's tmpfs mounts and tracefs are writable.
#
# Exit status: CMD's own status (its stdout and stderr are streamed back while it runs);
# 124 if the VM timed out; 125 if the VM gave no exit status (boot failure, kernel panic, ...):
# then the tail of the serial console is printed and the whole log is kept in the cache.
#
# Environment: WASMPROBE_VM_CACHE (default ~/.cache/wasmprobe-vm), WASMPROBE_VM_TIMEOUT,
# WASMPROBE_VM_BOOT_RETRIES (default 2: boots that die before CMD starts are retried; CMD itself
# is never run twice), WASMPROBE_VM_KERNEL (as -k), WASMPROBE_VM_QEMU_ARGS (extra QEMU
# arguments, split on spaces).
set -euo pipefail

readonly HOST_PACKAGES=(qemu-system-x86 busybox-static cpio xz-utils zstd)
# Guest modules, loaded with their dependencies; a name that is built into the kernel is skipped.
readonly GUEST_MODULES=(virtio_pci 9pnet_virtio 9p)

self_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
cache=${WASMPROBE_VM_CACHE:-$HOME/.cache/wasmprobe-vm}
timeout_s=${WASMPROBE_VM_TIMEOUT:-900}
retries=${WASMPROBE_VM_BOOT_RETRIES:-2}
kernel=${WASMPROBE_VM_KERNEL:-6.12}
setup_only=0 verbose=0 quiet=0 share=
guest_env=()

log() { [ "$quiet" = 1 ] || echo "run-in-vm: $*" >&2; }
die() { echo "run-in-vm: error: $*" >&2; exit 125; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
bad_usage() {
  echo "run-in-vm: $*" >&2
  echo "usage: $0 [--setup] [-k 6.12|6.1|PKG] [-t SECS] [-e VAR[=VAL]]... [-s DIR] [-v] [-q] -- CMD [ARGS...] (--help)" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case $1 in
    --setup) setup_only=1; shift ;;
    -k|--kernel) [ $# -ge 2 ] || bad_usage "$1 needs 6.12, 6.1 or a linux-image-* package"; kernel=$2; shift 2 ;;
    -t|--timeout) [ $# -ge 2 ] || bad_usage "$1 needs seconds"; timeout_s=$2; shift 2 ;;
    -e|--env) [ $# -ge 2 ] || bad_usage "$1 needs VAR=VALUE"; guest_env+=("$2"); shift 2 ;;
    -s|--share) [ $# -ge 2 ] || bad_usage "$1 needs a directory"; share=$2; shift 2 ;;
    -v|--verbose) verbose=1; shift ;;
    -q|--quiet) quiet=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) bad_usage "unknown option '$1' (the command goes after --)" ;;
  esac
done
if [ "$setup_only" = 0 ] && [ $# -eq 0 ]; then
  bad_usage "no command given"
fi
[[ $timeout_s =~ ^[0-9]+$ ]] || die "timeout must be a number of seconds, not '$timeout_s'"
# The kernel: a Debian meta package that names the newest build of a series (resolved with
# apt-cache, as point releases leave the mirror), or an exact package.
case $kernel in
  6.12) kernel_meta=linux-image-6.12-amd64 ;;
  6.1) kernel_meta=linux-image-amd64 ;;   # bookworm's default kernel, 6.1.0-N-amd64
  linux-image-*) kernel_meta= ;;
  *) bad_usage "unknown kernel '$kernel' (6.12, 6.1 or an exact linux-image-* package)" ;;
esac

# ------------------------------------------------------------------------------------------
# 1. Host packages. apt-get update runs only when an install cannot be done without it.
# ------------------------------------------------------------------------------------------
apt_quiet() {  # run an apt command; show its output only if it fails
  local out
  if out=$(DEBIAN_FRONTEND=noninteractive "$@" 2>&1); then return 0; fi
  printf '%s\n' "$out" | tail -n 20 >&2
  return 1
}
apt_updated=0
apt_update_once() {
  [ "$apt_updated" = 1 ] && return 0
  log "apt-get update"
  apt_quiet apt-get update -q || die "apt-get update failed"
  apt_updated=1
}

missing=()
for p in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  install=(apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}")
  apt_quiet "${install[@]}" 2>/dev/null || { apt_update_once; apt_quiet "${install[@]}" || die "cannot install ${missing[*]}"; }
fi

# ------------------------------------------------------------------------------------------
# 2. The guest kernel: the .deb is unpacked (dpkg-deb -x) into the cache, with no dpkg
#    database entry, no initramfs-tools or bootloader hooks. A kernel already in the cache is
#    used as it is, so a prepared machine needs no package lists and no network.
#    Layout: $cache/<package>/root/ (the unpacked .deb), .../initrd.img, and for each series
#    the package last resolved for it: $cache/current-6.12, $cache/current-6.1.
# ------------------------------------------------------------------------------------------
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9   # one preparer at a time; released before the VM boots

resolve_kernel_pkg() {
  [ -n "$kernel_meta" ] || { echo "$kernel"; return 0; }
  { apt-cache depends "$kernel_meta" 2>/dev/null || true; } \
    | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
download_kernel() {  # $1 = package; unpack it into $cache/$1/root
  local pkg=$1 tmp
  tmp=$(mktemp -d "$cache/.download.XXXXXX")
  if ! (cd "$tmp" && apt_quiet apt-get download -q "$pkg"); then rm -rf "$tmp"; return 1; fi
  dpkg-deb -x "$tmp"/*.deb "$tmp/root" || { rm -rf "$tmp"; return 1; }
  rm -f "$tmp"/*.deb
  rm -rf "${cache:?}/$pkg"
  mv "$tmp" "$cache/$pkg"
}

kpkg= current=$cache/current-$kernel
# Caches made before there was a choice name their 6.12 package in $cache/current.
[ "$kernel" = 6.12 ] && [ ! -f "$current" ] && [ -f "$cache/current" ] && mv "$cache/current" "$current"
if [ -n "$kernel_meta" ] && [ -f "$current" ]; then
  kpkg=$(cat "$current")
  [ -d "$cache/$kpkg/root/boot" ] || kpkg=
fi
if [ -z "$kpkg" ]; then
  kpkg=$(resolve_kernel_pkg)
  if [ -z "$kpkg" ]; then apt_update_once; kpkg=$(resolve_kernel_pkg); fi
  [ -n "$kpkg" ] || die "apt cannot resolve $kernel_meta (is bookworm-security in the apt sources?)"
fi
if [ ! -d "$cache/$kpkg/root/boot" ]; then
  log "downloading $kpkg (70-110 MB)"
  if ! download_kernel "$kpkg"; then
    # Point releases leave the mirror: refresh the lists, resolve the meta package again.
    apt_update_once
    kpkg=$(resolve_kernel_pkg)
    [ -n "$kpkg" ] || die "apt cannot resolve $kernel_meta"
    download_kernel "$kpkg" || die "apt-get download $kpkg failed"
  fi
fi
[ -z "$kernel_meta" ] || echo "$kpkg" > "$current"

kroot=$cache/$kpkg/root
kernels=("$kroot"/boot/vmlinuz-*)
vmlinuz=${kernels[0]}
[ -f "$vmlinuz" ] || die "$kpkg has no /boot/vmlinuz-*"
grep -qx 'CONFIG_KPROBE_EVENTS=y' "$kroot"/boot/config-* || die "$kpkg is built without CONFIG_KPROBE_EVENTS"
grep -qx 'CONFIG_9P_FS=[ym]' "$kroot"/boot/config-* || die "$kpkg has no 9p filesystem (a -cloud kernel?)"

# ------------------------------------------------------------------------------------------
# 3. The initramfs: static busybox, the modules for virtio-pci and 9p (decompressed, in
#    dependency order), and /init below. It is rebuilt when any of those inputs change.
# ------------------------------------------------------------------------------------------
# /init (busybox sh, PID 1). Mount tags: wpctl = the per-run control directory (the command
# script, its stdout/stderr and exit status), wphost = host root (ro), wpwork = the share.
read -r -d '' guest_init <<'INIT' || true
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/console 2>&1
say() { echo "wasmprobe-vm: $* (uptime $(cut -d' ' -f1 /proc/uptime)s)"; }
ctl_ok=0
fail() {  # power off without an exit status; the host reports 125 and does not retry
  say "FAILED: $*"
  [ "$ctl_ok" = 1 ] && echo "$*" > /ctl/failed
  sync; poweroff -f; sleep 60
}
for m in $(cat /lib/modules/load-order); do
  insmod "/lib/modules/$m.ko" || say "insmod $m failed"
done
o=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o $o wpctl /ctl || { say "cannot mount the control share"; poweroff -f; }
ctl_ok=1
. /ctl/vm.env
H=/hostroot
mount -t 9p -o $o,ro wphost $H || fail "cannot mount the host root"
mount -t proc proc $H/proc || fail "cannot mount /proc"
mount -t sysfs sysfs $H/sys || fail "cannot mount /sys"
mount -t tracefs nodev $H/sys/kernel/tracing || fail "cannot mount tracefs"
mount -t debugfs nodev $H/sys/kernel/debug || say "no debugfs"
mount -t devtmpfs devtmpfs $H/dev || fail "cannot mount /dev"
mkdir -p $H/dev/pts $H/dev/shm
mount -t devpts devpts $H/dev/pts || say "no devpts"
mount -t tmpfs -o mode=1777 tmpfs $H/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $H/tmp || fail "cannot mount /tmp"
mount -t tmpfs -o mode=755 tmpfs $H/run || fail "cannot mount /run"
mount -t 9p -o $o wpwork "$H$WORK" || fail "cannot mount the share at $WORK"
mkdir -p $H/run/wasmprobe-vm && mount -o bind /ctl $H/run/wasmprobe-vm || fail "cannot bind /ctl"
cut -d' ' -f1 /proc/uptime > /ctl/started
say "running the command"
env -i chroot $H /bin/sh /run/wasmprobe-vm/cmd.sh </dev/null >/ctl/stdout 2>/ctl/stderr
rc=$?
echo "$rc" > /ctl/rc
say "command exited with status $rc"
sync
poweroff -f
sleep 60
INIT

[ -x /bin/busybox ] || die "/bin/busybox is missing (package busybox-static)"
initrd=$cache/$kpkg/initrd.img
stamp=$( { printf '%s\n' "$guest_init" "${GUEST_MODULES[@]}" "$kpkg"; sha256sum < /bin/busybox; } | sha256sum | cut -c1-32)
if [ ! -f "$initrd" ] || [ "$(cat "$initrd.stamp" 2>/dev/null)" != "$stamp" ]; then
  log "building the initramfs for $kpkg"
  staging=$(mktemp -d "$cache/.initrd.XXXXXX")
  mkdir -p "$staging"/{bin,dev,proc,sys,tmp,ctl,hostroot,lib/modules}
  cp /bin/busybox "$staging/bin/busybox"
  printf '%s\n' "$guest_init" > "$staging/init"
  chmod 755 "$staging/init"
  declare -A added=()
  add_module() {  # decompress module $1 and its "depends=" closure, dependencies first
    local m=$1 f dep
    [ -n "${added[$m]:-}" ] && return 0
    added[$m]=1
    f=$(find "$kroot/lib/modules" \( -name "$m.ko*" -o -name "${m//_/-}.ko*" \) -print -quit)
    [ -n "$f" ] || return 0   # built in
    case $f in
      *.xz) xz -dc "$f" ;;
      *.zst) zstd -qdc "$f" ;;
      *.gz) gzip -dc "$f" ;;
      *) cat "$f" ;;
    esac > "$staging/lib/modules/$m.ko"
    for dep in $(tr '\0' '\n' < "$staging/lib/modules/$m.ko" | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' '); do
      add_module "$dep"
    done
    echo "$m" >> "$staging/lib/modules/load-order"
  }
  for m in "${GUEST_MODULES[@]}"; do add_module "$m"; done
  [ -s "$staging/lib/modules/load-order" ] || die "no 9p modules found in $kpkg"
  (cd "$staging" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  echo "$stamp" > "$initrd.stamp"
  log "initramfs modules: $(tr '\n' ' ' < "$staging/lib/modules/load-order")"
  rm -rf "$staging"
fi
exec 9>&-   # release the lock

if [ "$setup_only" = 1 ]; then
  log "ready: $(basename "$vmlinuz"), $(qemu-system-x86_64 --version | head -n 1), cache $cache"
  exit 0
fi

# ------------------------------------------------------------------------------------------
# 4. The per-run control directory (shared as wpctl; the guest sees it at /run/wasmprobe-vm).
# ------------------------------------------------------------------------------------------
if [ -z "$share" ]; then
  share=$(git -C "$self_dir" rev-parse --show-toplevel 2>/dev/null) || share=$(cd "$self_dir/../.." && pwd -P)
fi
share=$(cd "$share" && pwd -P) || die "cannot enter the share '$share'"
[ "$share" != / ] || die "the share cannot be /"
case $share in /tmp|/tmp/*) die "the share $share is under /tmp, which the guest cannot see" ;; esac

shq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }   # quote for sh
ctl=$(mktemp -d "${TMPDIR:-/tmp}/wasmprobe-vm.XXXXXX")
qpid='' tail_pids=()
stop_tails() {
  local p
  for p in "${tail_pids[@]+"${tail_pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
  tail_pids=()
}
cleanup() { stop_tails; rm -rf "$ctl"; }
trap cleanup EXIT
trap 'log "interrupted"; [ -n "$qpid" ] && kill "$qpid" 2>/dev/null; exit 130' INT
trap 'log "terminated"; [ -n "$qpid" ] && kill "$qpid" 2>/dev/null; exit 143' TERM

echo "WORK=$(shq "$share")" > "$ctl/vm.env"
{
  echo '#!/bin/sh'
  echo '# generated by tests/vm/run-in-vm.sh: runs in the guest, chrooted into the host root'
  echo "export PATH=$(shq "$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")"
  echo "export HOME=$(shq "$HOME") KP_IN_VM=1"
  for e in "${guest_env[@]+"${guest_env[@]}"}"; do
    name=${e%%=*}
    [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad -e argument '$e'"
    if [[ $e == *=* ]]; then
      echo "export $name=$(shq "${e#*=}")"
    elif [ -n "${!name+set}" ]; then
      echo "export $name=$(shq "${!name}")"
    fi
  done
  # The guest has its own /tmp, /run, /proc, /sys and /dev: a host cwd there means nothing in it.
  fallback="{ printf 'run-in-vm: %s is not visible in the guest; running in %s\\n' $(shq "$PWD") $(shq "$share") >&2; cd $(shq "$share"); }"
  case $PWD in
    /tmp|/tmp/*|/run|/run/*|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) echo "$fallback" ;;
    *) echo "cd $(shq "$PWD") 2>/dev/null || $fallback" ;;
  esac
  printf 'exec'
  for a in "$@"; do printf ' %s' "$(shq "$a")"; done
  echo
} > "$ctl/cmd.sh"

# ------------------------------------------------------------------------------------------
# 5. Boot. stdout/stderr are streamed from the control directory as the guest writes them.
# ------------------------------------------------------------------------------------------
virtfs() {  # $1 = host path (commas doubled for QEMU's option parser), $2 = tag, $3 = extra
  printf 'local,path=%s,mount_tag=%s,security_model=none,multidevs=remap%s' "${1//,/,,}" "$2" "${3:-}"
}
console=$ctl/console.log
read -r -a extra_qemu <<< "${WASMPROBE_VM_QEMU_ARGS:-}"
boot() {
  rm -f "$ctl"/{rc,started,failed}
  : > "$ctl/stdout"; : > "$ctl/stderr"; : > "$console"
  timeout -k 10 "$timeout_s" qemu-system-x86_64 \
    -accel tcg,thread=single -smp 2 -m 1024 \
    -nodefaults -no-user-config -display none -no-reboot \
    -kernel "$vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 quiet panic=-1 oops=panic" \
    -serial "file:$console" \
    -virtfs "$(virtfs "$ctl" wpctl)" \
    -virtfs "$(virtfs / wphost ,readonly=on)" \
    -virtfs "$(virtfs "$share" wpwork)" \
    "${extra_qemu[@]+"${extra_qemu[@]}"}" </dev/null &
  qpid=$!
  # tail --pid stops after QEMU is gone (and reaped), having read what was left in the file.
  tail -c +1 -f --pid="$qpid" "$ctl/stdout" & tail_pids+=($!)
  tail -c +1 -f --pid="$qpid" "$ctl/stderr" >&2 & tail_pids+=($!)
  if [ "$verbose" = 1 ]; then tail -c +1 -f --pid="$qpid" "$console" >&2 & tail_pids+=($!); fi
  qrc=0; wait "$qpid" || qrc=$?
  qpid=
  local p; for p in "${tail_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  tail_pids=()
}
console_tail() {
  cp "$console" "$cache/last-console.log" 2>/dev/null || true
  echo "run-in-vm: last lines of the guest console (whole log: $cache/last-console.log):" >&2
  tr -d '\r' < "$console" | grep -v '^[[:space:]]*$' | tail -n 60 | sed 's/^/  | /' >&2 || true
}

log "booting $(basename "$vmlinuz") under QEMU TCG; share $share"
t0=$(date +%s.%N)
attempt=1
while :; do
  boot
  [ -f "$ctl/started" ] || [ -f "$ctl/failed" ] || [ "$qrc" = 124 ] || [ "$qrc" = 137 ] && break
  [ "$attempt" -gt "$retries" ] && break
  log "the guest died before the command started (QEMU status $qrc); boot $((attempt + 1)) of $((retries + 1))"
  tr -d '\r' < "$console" | grep -v '^[[:space:]]*$' | tail -n 5 | sed 's/^/  | /' >&2 || true
  attempt=$((attempt + 1))
  t0=$(date +%s.%N)
done
t1=$(date +%s.%N)

timing() {  # wall-clock seconds: boot (QEMU start to command start), command, total
  if [ -f "$ctl/started" ]; then
    awk -v a="$t0" -v b="$(stat -c %.3Y "$ctl/started")" -v c="$t1" \
      'BEGIN { printf "boot %.1fs, command %.1fs, total %.1fs", b - a, c - b, c - a }'
  else
    awk -v a="$t0" -v c="$t1" 'BEGIN { printf "total %.1fs", c - a }'
  fi
}

if [ -f "$ctl/rc" ]; then
  rc=$(tr -dc '0-9' < "$ctl/rc")
  [ -n "$rc" ] || rc=125
  log "exit status $rc ($(timing))"
  exit "$rc"
fi
[ -f "$ctl/failed" ] && echo "run-in-vm: guest setup failed: $(cat "$ctl/failed")" >&2
console_tail
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  echo "run-in-vm: timed out after ${timeout_s}s ($(timing))" >&2
  exit 124
fi
echo "run-in-vm: the VM gave no exit status (QEMU status $qrc, $(timing))" >&2
exit 125
