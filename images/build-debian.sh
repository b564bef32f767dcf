#!/usr/bin/env bash
# Builds the Debian bookworm guest image for Ekiden's QEMU driver (drivers/qemu.ts).
#
#   images/build-debian.sh [--out DIR] [--name ALIAS] [--mirror URL] [--size 8G]
#                          [--runner-tarball actions-runner-linux-x64-*.tar.gz]
#                          [--standin-dist DIR] [--force] [--print-dir] [--prune]
#
# Output (outside the repo):
#   ${XDG_CACHE_HOME:-~/.cache}/ekiden/images/debian-bookworm-<hash>/
#       disk.qcow2  vmlinuz  initrd.img  manifest.json
#   ${XDG_CACHE_HOME:-~/.cache}/ekiden/images/<ALIAS> -> debian-bookworm-<hash>   (symlink)
# <hash> covers every input of the build (this script, the package list, the runner payload,
# the disk size); a build whose output exists is skipped. The driver's image ref
# `qemu:<ALIAS>` (default `qemu:debian-bookworm-runner`) resolves through the symlink.
#
# Runs as root (debootstrap, chroot, device nodes). Network: only the Debian mirror apt uses
# on this host (read from /etc/apt/sources.list{,.d}), or --mirror / $EKIDEN_DEBIAN_MIRROR.
#
# --print-dir prints the image directory on stdout (everything else goes to stderr).
# --prune removes other cached builds no alias points at (only when no VM still uses them:
# a VM's disk is an overlay over its image's disk.qcow2) and unused base trees.
#
# The guest: minbase + openssh-server + linux-image-cloud-amd64 + systemd, DHCP on the NIC
# (systemd-networkd), user `runner` (passwordless sudo) with ~/actions-runner. Nothing secret
# or per-VM is baked in: at each boot the unit ekiden-guest-init reads the SSH host key, the
# authorized key and the hostname from QEMU fw_cfg (opt/ekiden/*), before sshd starts.
set -euo pipefail

SUITE=bookworm
ARCH=amd64
OUT="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ekiden/images"
ALIAS=debian-bookworm-runner
MIRROR="${EKIDEN_DEBIAN_MIRROR:-}"
SIZE=8G
RUNNER_TARBALL=""
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STANDIN_DIST="$(cd "$HERE/.." && pwd)/dist"
FORCE=0
PRINT_DIR=0
PRUNE=0
# stdout is for --print-dir only.
exec 3>&1 1>&2

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --name) ALIAS="$2"; shift 2 ;;
    --mirror) MIRROR="$2"; shift 2 ;;
    --size) SIZE="$2"; shift 2 ;;
    --runner-tarball) RUNNER_TARBALL="$2"; shift 2 ;;
    --standin-dist) STANDIN_DIST="$2"; shift 2 ;;
    --force) FORCE=1; shift ;;
    --print-dir) PRINT_DIR=1; shift ;;
    --prune) PRUNE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build-debian.sh: unknown argument $1" >&2; usage >&2; exit 64 ;;
  esac
done

log() { printf '[build-debian %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'build-debian.sh: %s\n' "$*" >&2; exit 1; }

case "$ALIAS" in
  *[!a-z0-9._-]* | '' | .*) die "--name must be lower-case letters, digits, '.', '_' or '-'" ;;
esac
[[ "$SIZE" =~ ^[0-9]+[MG]$ ]] || die "--size must look like 8G or 4096M"

# ---------------------------------------------------------------- inputs and their hash

PACKAGES=(
  openssh-server linux-image-cloud-amd64 systemd-sysv systemd-resolved udev dbus kmod
  iproute2 ca-certificates nodejs procps util-linux curl sudo e2fsprogs busybox-static
)
if [ -n "$RUNNER_TARBALL" ]; then
  [ -f "$RUNNER_TARBALL" ] || die "runner tarball $RUNNER_TARBALL not found"
  # What actions/runner's installdependencies.sh installs on Debian 12, plus git for checkouts.
  PACKAGES+=(libicu72 libkrb5-3 zlib1g libssl3 liblttng-ust1 git)
  PAYLOAD_KIND=actions-runner
  PAYLOAD_HASH="$(sha256sum "$RUNNER_TARBALL" | cut -d' ' -f1)"
  PAYLOAD_DESC="$(basename "$RUNNER_TARBALL")"
else
  ENTRY="$STANDIN_DIST/emulator/runner/main.js"
  [ -f "$ENTRY" ] || die "$ENTRY not found: build the stand-in first (npx tsc -p tsconfig.build.json) or pass --runner-tarball"
  # main.js and every module it imports by relative path (recursively), paths relative to dist.
  STANDIN_FILES=()
  queue=("emulator/runner/main.js")
  while [ ${#queue[@]} -gt 0 ]; do
    rel="${queue[0]}"; queue=("${queue[@]:1}")
    case " ${STANDIN_FILES[*]-} " in *" $rel "*) continue ;; esac
    [ -f "$STANDIN_DIST/$rel" ] || die "stand-in module $STANDIN_DIST/$rel not found"
    STANDIN_FILES+=("$rel")
    while IFS= read -r spec; do
      [ -n "$spec" ] || continue
      dep="$(realpath -m --relative-to="$STANDIN_DIST" "$STANDIN_DIST/$(dirname "$rel")/$spec")"
      queue+=("$dep")
    done < <(grep -oE "(from|import)[[:space:]]*\(?[[:space:]]*['\"]\.\.?/[^'\"]+['\"]" "$STANDIN_DIST/$rel" | grep -oE "\.\.?/[^'\"]+" || true)
  done
  PAYLOAD_KIND=standin
  PAYLOAD_HASH="$(cd "$STANDIN_DIST" && sha256sum "${STANDIN_FILES[@]}" | sha256sum | cut -d' ' -f1)"
  PAYLOAD_DESC="stand-in: ${STANDIN_FILES[*]}"
fi

SCRIPT_HASH="$(sha256sum "$0" | cut -d' ' -f1)"
BASE_HASH="$(printf '%s\n' "$SUITE" "$ARCH" "minbase" "${PACKAGES[@]}" | sha256sum | cut -c1-16)"
HASH="$(printf '%s\n' "$SCRIPT_HASH" "$BASE_HASH" "$PAYLOAD_KIND" "$PAYLOAD_HASH" "$SIZE" | sha256sum | cut -c1-16)"
NAME="debian-$SUITE-$HASH"
BASE_TAR="$OUT/.base/debian-$SUITE-$BASE_HASH.tar"
DEST="$OUT/$NAME"

link_alias() {
  ln -sfn "$NAME" "$OUT/.alias-$ALIAS.$$"
  mv -Tf "$OUT/.alias-$ALIAS.$$" "$OUT/$ALIAS"
}

prune() {
  local d keep target
  for d in "$OUT"/debian-*; do
    if [ ! -d "$d" ] || [ -L "$d" ]; then continue; fi
    keep=0
    for target in "$OUT"/*; do
      [ -L "$target" ] && [ "$(readlink "$target")" = "$(basename "$d")" ] && keep=1
    done
    [ "$keep" = 1 ] && continue
    log "prune: removing $d"
    rm -rf "$d"
  done
  for d in "$OUT"/.base/*.tar; do
    [ -f "$d" ] && [ "$d" != "$BASE_TAR" ] && { log "prune: removing $d"; rm -f "$d"; }
  done
}

finish() {
  link_alias
  [ "$PRUNE" = 1 ] && prune
  if [ "$PRINT_DIR" = 1 ]; then echo "$DEST" >&3; fi
}

if [ "$FORCE" = 0 ] && [ -f "$DEST/manifest.json" ]; then
  log "image $NAME is cached at $DEST; nothing to build"
  finish
  exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot); the output is cached, so this is needed once"
for tool in debootstrap mkfs.ext4 qemu-img chroot sha256sum flock; do
  command -v "$tool" >/dev/null || die "$tool not found; apt-get install debootstrap qemu-utils e2fsprogs"
done

if [ -z "$MIRROR" ]; then
  # The mirror apt uses for $SUITE on this host: deb822 .sources first, then one-line lists.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    MIRROR="$(awk -v suite="$SUITE" '
      function flush() { if (uris != "" && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris !~ /security/) { split(uris, u, " "); print u[1]; found = 1; exit } uris = ""; suites = ""; types = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^Types:/ { sub(/^Types:[[:space:]]*/, ""); types = $0 }
      /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
      /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
      END { if (!found) flush() }' "$f")"
    [ -n "$MIRROR" ] && break
  done
fi
if [ -z "$MIRROR" ]; then
  MIRROR="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk -v suite="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == suite && $i !~ /security/) { print $i; exit } }')"
fi
[ -n "$MIRROR" ] || die "no Debian mirror for $SUITE found in /etc/apt; pass --mirror URL"

mkdir -p "$OUT"
mkdir -p "$OUT/.locks"
exec 9>"$OUT/.locks/$HASH"
flock 9
if [ "$FORCE" = 0 ] && [ -f "$DEST/manifest.json" ]; then
  log "image $NAME was built by a concurrent builder"
  finish
  exit 0
fi

STARTED=$(date +%s)
WORK="$(mktemp -d "$OUT/.work-$HASH.XXXXXX")"
TREE="$WORK/tree"
MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- base tree (cached)

mkdir -p "$OUT/.base" "$TREE"
if [ -f "$BASE_TAR" ]; then
  log "base tree: reusing $BASE_TAR"
  tar -xpf "$BASE_TAR" --numeric-owner --xattrs --xattrs-include='*' -C "$TREE"
else
  log "base tree: debootstrap $SUITE from $MIRROR"
  include="$(IFS=,; echo "${PACKAGES[*]}")"
  if ! debootstrap --arch="$ARCH" --variant=minbase --include="$include" "$SUITE" "$TREE" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 40 "$WORK/debootstrap.log" >&2
    [ -f "$TREE/debootstrap/debootstrap.log" ] && tail -n 40 "$TREE/debootstrap/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  rm -rf "$TREE/var/cache/apt/archives/"*.deb "$TREE/var/lib/apt/lists/"*
  tar -cpf "$BASE_TAR.tmp.$$" --numeric-owner --xattrs --xattrs-include='*' -C "$TREE" .
  mv -f "$BASE_TAR.tmp.$$" "$BASE_TAR"
  log "base tree: cached as $BASE_TAR"
fi

# ---------------------------------------------------------------- configure

log "configuring the guest"
in_tree() { chroot "$TREE" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
mount -t proc proc "$TREE/proc" && MOUNTS+=("$TREE/proc")

echo ekiden >"$TREE/etc/hostname"
cat >"$TREE/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	ekiden
::1		localhost ip6-localhost ip6-loopback
EOF
cat >"$TREE/etc/fstab" <<'EOF'
# Root comes from the kernel command line (root=/dev/vda rw); no fsck of a throwaway disk.
/dev/vda	/	ext4	rw,noatime,errors=remount-ro	0	0
EOF
echo 'LANG=C.UTF-8' >"$TREE/etc/default/locale"
# A fresh machine id per VM: the driver passes systemd.machine_id= on the kernel command line.
: >"$TREE/etc/machine-id"
rm -f "$TREE/var/lib/dbus/machine-id"
ln -sf /etc/machine-id "$TREE/var/lib/dbus/machine-id"

# DHCP on the virtio NIC (user networking: 10.0.2.15, host = 10.0.2.2, DNS 10.0.2.3).
mkdir -p "$TREE/etc/systemd/network"
cat >"$TREE/etc/systemd/network/20-ekiden.network" <<'EOF'
[Match]
Type=ether

[Network]
DHCP=ipv4
IPv6AcceptRA=no
LinkLocalAddressing=no

[DHCPv4]
UseDomains=yes
EOF
in_tree systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1
ln -sf ../run/systemd/resolve/stub-resolv.conf "$TREE/etc/resolv.conf"
# systemd-resolved orders itself before sysinit.target, i.e. before everything, sshd included;
# nothing needs DNS that early here, so start it once sshd runs (a copy of the unit without
# that ordering: dependencies cannot be removed by a drop-in).
sed -e 's/^Before=sysinit.target /Before=/' -e 's/^\(Before=.*\) sysinit.target/\1/' \
  -e 's/^After=\(.*\)/After=\1 sysinit.target ssh.service/' \
  "$TREE/lib/systemd/system/systemd-resolved.service" >"$TREE/etc/systemd/system/systemd-resolved.service"
grep -q '^Before=.*sysinit.target' "$TREE/etc/systemd/system/systemd-resolved.service" && die "could not reorder systemd-resolved"
# Nothing in the guest waits for "network online"; do not let anything pull in the wait.
in_tree systemctl disable systemd-networkd-wait-online.service >/dev/null 2>&1 || true
# No background work in a VM that lives for one job; no mounts or modules it does not use.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
  getty@tty1.service dev-hugepages.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
  modprobe@drm.service modprobe@efi_pstore.service modprobe@fuse.service modprobe@loop.service \
  modprobe@dm_mod.service modprobe@configfs.service sys-kernel-config.mount systemd-pstore.service; do
  in_tree systemctl mask "$unit" >/dev/null 2>&1 || true
done
# Logins are allowed as soon as sshd runs: no /run/nologin while booting (pam_nologin would
# refuse `runner` until systemd-user-sessions, which waits for network.target).
ln -sf /dev/null "$TREE/etc/tmpfiles.d/systemd-nologin.conf"
# The journal stays in memory (the VM's disk is thrown away; the serial console is on the host).
mkdir -p "$TREE/etc/systemd/journald.conf.d"
cat >"$TREE/etc/systemd/journald.conf.d/ekiden.conf" <<'EOF'
[Journal]
Storage=volatile
RuntimeMaxUse=64M
EOF

# The user the runner runs as: no password (key auth only), passwordless sudo.
if ! in_tree id runner >/dev/null 2>&1; then
  in_tree useradd --create-home --shell /bin/bash --user-group runner
fi
in_tree usermod -p '*' runner
echo 'runner ALL=(ALL) NOPASSWD:ALL' >"$TREE/etc/sudoers.d/runner"
chmod 0440 "$TREE/etc/sudoers.d/runner"

# sshd: key auth for `runner` only; the host key arrives per VM (below). No baked host keys.
rm -f "$TREE"/etc/ssh/ssh_host_*
cat >"$TREE/etc/ssh/sshd_config.d/ekiden.conf" <<'EOF'
# Ekiden guest: the host key and authorized key are installed per VM at boot (ekiden-guest-init).
HostKey /etc/ssh/ssh_host_ed25519_key
AllowUsers runner
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthenticationMethods publickey
UseDNS no
AcceptEnv LANG LC_* ACTIONS_RUNNER_*
EOF

cat >"$TREE/usr/local/sbin/ekiden-guest-init" <<'EOF'
#!/bin/sh
# Per-VM configuration written by Ekiden's QEMU driver and passed as QEMU fw_cfg files
# (-fw_cfg name=opt/ekiden/<item>,file=…): the SSH host key pair, the runner's authorized key
# and the hostname. Runs at every boot, before sshd; fails (and so sshd fails) without them.
# Shell builtins only: every exec costs under TCG. (qemu_fw_cfg is loaded by the initramfs.)
set -eu
d=/sys/firmware/qemu_fw_cfg/by_name/opt/ekiden
[ -d /sys/firmware/qemu_fw_cfg ] || modprobe qemu_fw_cfg 2>/dev/null || true
put() { # put SRC DST: copies a text file with builtins (an existing DST keeps owner and mode)
  while IFS= read -r line || [ -n "$line" ]; do printf '%s\n' "$line"; done <"$1" >"$2"
  [ -s "$2" ] || { echo "ekiden-guest-init: $1 is empty" >&2; exit 1; }
}
for item in host_key host_key_pub authorized_keys; do
  [ -r "$d/$item/raw" ] || { echo "ekiden-guest-init: no $d/$item (not started by Ekiden's QEMU driver?)" >&2; exit 1; }
done
umask 077
put "$d/host_key/raw" /etc/ssh/ssh_host_ed25519_key
umask 022
put "$d/host_key_pub/raw" /etc/ssh/ssh_host_ed25519_key.pub
# authorized_keys exists in the image (owner runner, mode 0600).
put "$d/authorized_keys/raw" /home/runner/.ssh/authorized_keys
if [ -r "$d/hostname/raw" ]; then
  IFS= read -r h <"$d/hostname/raw" || true
  case "$h" in
    '' | *[!a-z0-9.-]*) echo "ekiden-guest-init: ignoring hostname '$h'" >&2 ;;
    *)
      printf '%s\n' "$h" >/etc/hostname
      printf '%s' "$h" >/proc/sys/kernel/hostname
      printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' "$h" >/etc/hosts
      ;;
  esac
fi
EOF
chmod 0755 "$TREE/usr/local/sbin/ekiden-guest-init"
install -d -m 0700 "$TREE/home/runner/.ssh"
install -m 0600 /dev/null "$TREE/home/runner/.ssh/authorized_keys"
cat >"$TREE/etc/systemd/system/ekiden-guest-init.service" <<'EOF'
[Unit]
Description=Ekiden per-VM configuration (SSH host key, authorized key, hostname) from fw_cfg
DefaultDependencies=no
After=local-fs.target systemd-remount-fs.service
Before=ssh.service systemd-networkd.service shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/ekiden-guest-init
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
RequiredBy=ssh.service
EOF
cat >"$TREE/etc/systemd/system/ekiden-growfs.service" <<'EOF'
[Unit]
Description=Grow the root filesystem to the size of the VM's disk
ConditionKernelCommandLine=ekiden.growfs=1
After=local-fs.target ssh.service

[Service]
Type=oneshot
ExecStart=/sbin/resize2fs /dev/vda

[Install]
WantedBy=multi-user.target
EOF
# The guest's IPv4 address on the serial console, for the driver when no port is forwarded (tap).
cat >"$TREE/usr/local/sbin/ekiden-report-ip" <<'EOF'
#!/bin/sh
i=0
while [ "$i" -lt 600 ]; do
  a=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
  if [ -n "$a" ]; then
    printf '\nekiden-guest: ipv4=%s\n' "$a" >/dev/ttyS0
    exit 0
  fi
  i=$((i + 1))
  sleep 0.2
done
exit 1
EOF
chmod 0755 "$TREE/usr/local/sbin/ekiden-report-ip"
cat >"$TREE/etc/systemd/system/ekiden-report-ip.service" <<'EOF'
[Unit]
Description=Report the guest's IPv4 address on the serial console
After=systemd-networkd.service

[Service]
Type=simple
ExecStart=/usr/local/sbin/ekiden-report-ip

[Install]
WantedBy=multi-user.target
EOF
in_tree systemctl enable ekiden-guest-init.service ekiden-growfs.service ekiden-report-ip.service ssh.service >/dev/null 2>&1
# sshd listens on the wildcard address: it need not wait for network.target (and with it for
# networkd and resolved). A copy of the unit without that ordering, plus the per-VM keys.
# Its config test (ExecStartPre=sshd -t) goes too: one sshd run less per boot.
sed -e '/^After=/s/network\.target *//' -e '/^ExecStartPre=\/usr\/sbin\/sshd -t/d' \
  "$TREE/lib/systemd/system/ssh.service" >"$TREE/etc/systemd/system/ssh.service"
mkdir -p "$TREE/etc/systemd/system/ssh.service.d"
cat >"$TREE/etc/systemd/system/ssh.service.d/ekiden.conf" <<'EOF'
[Unit]
Requires=ekiden-guest-init.service
After=ekiden-guest-init.service
EOF
# The ACPI power button (QMP system_powerdown) must shut the guest down: systemd-logind does
# that by default (HandlePowerKey=poweroff); say so explicitly, and never let it be inhibited.
mkdir -p "$TREE/etc/systemd/logind.conf.d"
cat >"$TREE/etc/systemd/logind.conf.d/ekiden.conf" <<'EOF'
[Login]
HandlePowerKey=poweroff
PowerKeyIgnoreInhibited=yes
EOF
# A VM that ignores SIGTERM somewhere must still stop within the driver's grace period.
mkdir -p "$TREE/etc/systemd/system.conf.d"
cat >"$TREE/etc/systemd/system.conf.d/ekiden.conf" <<'EOF'
[Manager]
DefaultTimeoutStopSec=10s
EOF

# ---------------------------------------------------------------- the runner

RUNNER_HOME="$TREE/home/runner/actions-runner"
rm -rf "$RUNNER_HOME"
mkdir -p "$RUNNER_HOME"
if [ "$PAYLOAD_KIND" = actions-runner ]; then
  log "runner: extracting $(basename "$RUNNER_TARBALL")"
  tar -xzf "$RUNNER_TARBALL" -C "$RUNNER_HOME"
  [ -x "$RUNNER_HOME/run.sh" ] || die "$RUNNER_TARBALL has no run.sh at its top level"
else
  log "runner: the Ekiden stand-in (${STANDIN_FILES[*]})"
  mkdir -p "$RUNNER_HOME/.standin"
  echo '{ "type": "module" }' >"$RUNNER_HOME/.standin/package.json"
  for rel in "${STANDIN_FILES[@]}"; do
    install -D -m 0644 "$STANDIN_DIST/$rel" "$RUNNER_HOME/.standin/$rel"
  done
  for cmd in run config; do
    cat >"$RUNNER_HOME/$cmd.sh" <<EOF
#!/bin/sh
# Ekiden runner stand-in (TEST AND DEMO INFRASTRUCTURE), not actions/runner.
# Like the real scripts, it works from its own directory.
cd "\$(dirname "\$0")" || exit 1
exec node ./.standin/emulator/runner/main.js $cmd "\$@"
EOF
    chmod 0755 "$RUNNER_HOME/$cmd.sh"
  done
fi
in_tree chown -R runner:runner /home/runner

# /etc and /var are up to date with /usr: no first-boot ldconfig, sysusers, catalog or hwdb
# rebuild in every clone (ConditionNeedsUpdate). Last step that touches /usr.
for d in etc var; do
  printf '# This file was created by systemd-update-done. Its only\n# purpose is to hold a timestamp of the time this directory\n# was updated. See man:systemd-update-done.service(8).\nTIMESTAMP_NSEC=%s\n' \
    "$(stat -c %.9Y "$TREE/usr" | tr -d .)" >"$TREE/$d/.updated"
  touch -r "$TREE/usr" "$TREE/$d/.updated"
done

# ---------------------------------------------------------------- kernel, initrd, disk

KVER="$(find "$TREE/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -n 1)"
KVER="${KVER#vmlinuz-}"
[ -n "$KVER" ] || die "no kernel in $TREE/boot"
STAGE="$WORK/out"
mkdir -p "$STAGE"
install -m 0644 "$TREE/boot/vmlinuz-$KVER" "$STAGE/vmlinuz"
NODE_VERSION="$(in_tree node --version 2>/dev/null || echo unknown)"

# Ekiden's own initramfs instead of Debian's (which starts udev and probes everything; seconds
# under TCG): busybox, the virtio PCI and block drivers and qemu_fw_cfg, and an /init that
# mounts root= and switches to its init. Built inside the tree (busybox cpio), then gzipped.
log "initramfs: busybox + virtio drivers for $KVER"
MODDIR="$TREE/lib/modules/$KVER"
INITRD_MODULES=()
add_module_path() { # PATH relative to MODDIR, after its dependencies
  local p="$1" line dep
  case " ${INITRD_MODULES[*]-} " in *" $p "*) return 0 ;; esac
  line="$(grep -m1 "^$p:" "$MODDIR/modules.dep")" || die "$p not in modules.dep"
  for dep in ${line#*:}; do add_module_path "$dep"; done
  INITRD_MODULES+=("$p")
}
for name in virtio_pci virtio_blk qemu_fw_cfg; do
  line="$(grep -m1 -E "(^|/)$name\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep" || true)"
  if [ -z "$line" ]; then
    grep -qE "(^|/)$name\.ko" "$MODDIR/modules.builtin" || die "kernel $KVER has no $name"
    continue
  fi
  add_module_path "${line%%:*}"
done
IRD="$TREE/tmp/ekiden-initramfs"
rm -rf "$IRD"
mkdir -p "$IRD"/{bin,dev,proc,sys,root,lib/modules}
install -m 0755 "$TREE/bin/busybox" "$IRD/bin/busybox"
mknod -m 600 "$IRD/dev/console" c 5 1
: >"$IRD/modules"
for p in "${INITRD_MODULES[@]}"; do
  case "$p" in *.ko) ;; *) die "compressed module $p: the initramfs loads plain .ko files only" ;; esac
  install -m 0644 "$MODDIR/$p" "$IRD/lib/modules/$(basename "$p")"
  basename "$p" >>"$IRD/modules"
done
cat >"$IRD/init" <<'EOF'
#!/bin/busybox sh
# Ekiden initramfs: load the virtio drivers, mount root=, switch to its init.
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
fail() {
  echo "ekiden-initramfs: $*; powering off"
  $bb sleep 1
  $bb poweroff -f
}
while read -r m; do $bb insmod "/lib/modules/$m" || fail "insmod $m failed"; done </modules
root=/dev/vda init=/sbin/init mode=rw fstype=ext4 flags=
for arg in $($bb cat /proc/cmdline); do
  case "$arg" in
    root=*) root=${arg#root=} ;;
    init=*) init=${arg#init=} ;;
    rootfstype=*) fstype=${arg#rootfstype=} ;;
    rootflags=*) flags=,${arg#rootflags=} ;;
    ro) mode=ro ;;
    rw) mode=rw ;;
  esac
done
i=0
while :; do
  case "$root" in
    LABEL=* | UUID=*) dev=$($bb findfs "$root" 2>/dev/null) || dev= ;;
    *) dev=$root ;;
  esac
  [ -n "$dev" ] && [ -b "$dev" ] && break
  i=$((i + 1))
  [ "$i" -ge 600 ] && fail "root device $root did not appear within 30 s"
  $bb usleep 50000
done
$bb mount -t "$fstype" -o "$mode$flags" "$dev" /root || fail "cannot mount $dev on /root"
[ -x "/root$init" ] || [ -L "/root$init" ] || fail "no $init on $dev"
$bb umount /sys
$bb umount /proc
$bb mount --move /dev /root/dev
exec $bb switch_root /root "$init"
EOF
chmod 0755 "$IRD/init"
in_tree sh -c 'cd /tmp/ekiden-initramfs && find . -mindepth 1 | LC_ALL=C sort | /bin/busybox cpio -o -H newc 2>/dev/null' \
  | gzip -9n >"$STAGE/initrd.img"
chmod 0644 "$STAGE/initrd.img"
[ "$(stat -c %s "$STAGE/initrd.img")" -gt 100000 ] || die "initramfs came out empty (busybox cpio -o?)"
rm -rf "$IRD"

for m in "${MOUNTS[@]}"; do umount "$m"; done
MOUNTS=()
rm -rf "$TREE/var/cache/apt/archives/"*.deb "$TREE/var/lib/apt/lists/"* "$TREE/var/log/"*.log "$TREE/tmp/"* "$TREE/root/.bash_history"

log "disk: mkfs.ext4 -d ($SIZE) and qemu-img convert"
# Inode tables and journal are zeroed now (they stay sparse in the qcow2), so the guest's
# ext4lazyinit never writes them into every clone.
mkfs.ext4 -q -F -L ekiden-root -m 1 -E lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0 \
  -d "$TREE" "$WORK/disk.raw" "$SIZE"
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$STAGE/disk.qcow2"
rm -f "$WORK/disk.raw"
chmod 0644 "$STAGE/disk.qcow2"
DIGEST="sha256:$(sha256sum "$STAGE/disk.qcow2" | cut -d' ' -f1)"
ELAPSED=$(($(date +%s) - STARTED))

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
cat >"$STAGE/manifest.json" <<EOF
{
  "format": 1,
  "name": $(json_str "$NAME"),
  "os": "debian-$SUITE",
  "arch": "x86_64",
  "digest": $(json_str "$DIGEST"),
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "initrdModules": [$(printf '"%s",' "${INITRD_MODULES[@]}" | sed 's/,$//')],
  "disk": "disk.qcow2",
  "append": "root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.firstboot=off",
  "username": "runner",
  "runnerDir": "/home/runner/actions-runner",
  "runner": $(json_str "$PAYLOAD_KIND"),
  "runnerSource": $(json_str "$PAYLOAD_DESC"),
  "kernelVersion": $(json_str "$KVER"),
  "nodeVersion": $(json_str "$NODE_VERSION"),
  "diskSize": $(json_str "$SIZE"),
  "packages": [$(printf '"%s",' "${PACKAGES[@]}" | sed 's/,$//')],
  "mirror": $(json_str "$MIRROR"),
  "inputsHash": $(json_str "$HASH"),
  "builtAt": $(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),
  "buildSeconds": $ELAPSED
}
EOF

rm -rf "$DEST"
mv -T "$STAGE" "$DEST"
log "built $NAME in ${ELAPSED}s: $DEST ($(du -sh "$DEST" | cut -f1))"
finish
