#!/usr/bin/env bash
# Builds the Debian bookworm guest image for Ekiden's QEMU driver (drivers/qemu.ts).
#
#   images/build-debian.sh [--out DIR] [--name ALIAS] [--mirror URL] [--size 8G]
#                          [--runner-tarball actions-runner-linux-x64-*.tar.gz]
#                          [--standin-dist DIR] [--force] [--print-dir]
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

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }

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
  iproute2 ca-certificates nodejs procps util-linux curl sudo e2fsprogs
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
DEST="$OUT/$NAME"

link_alias() {
  ln -sfn "$NAME" "$OUT/.alias-$ALIAS.$$"
  mv -Tf "$OUT/.alias-$ALIAS.$$" "$OUT/$ALIAS"
}

finish() {
  link_alias
  if [ "$PRINT_DIR" = 1 ]; then echo "$DEST"; fi
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
exec 9>"$OUT/.build-$HASH.lock"
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
  local m
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- base tree (cached)

BASE_TAR="$OUT/.base/debian-$SUITE-$BASE_HASH.tar"
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
# A fresh machine id per VM: the driver passes systemd.machine_id= on the kernel command line.
: >"$TREE/etc/machine-id"
rm -f "$TREE/var/lib/dbus/machine-id"
ln -sf /etc/machine-id "$TREE/var/lib/dbus/machine-id"

# DHCP on the virtio NIC (user networking: 10.0.2.15, host = 10.0.2.2, DNS 10.0.2.3).
mkdir -p "$TREE/etc/systemd/network"
cat >"$TREE/etc/systemd/network/20-ekiden.network" <<'EOF'
[Match]
Name=en* eth*

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
# nothing needs DNS that early here, so start it alongside the rest (a copy of the unit
# without that ordering: dependencies cannot be removed by a drop-in).
sed -e 's/^Before=sysinit.target /Before=/' -e 's/^\(Before=.*\) sysinit.target/\1/' \
  -e 's/^After=\(.*\)/After=\1 sysinit.target/' \
  "$TREE/lib/systemd/system/systemd-resolved.service" >"$TREE/etc/systemd/system/systemd-resolved.service"
grep -q '^Before=.*sysinit.target' "$TREE/etc/systemd/system/systemd-resolved.service" && die "could not reorder systemd-resolved"
# Nothing in the guest waits for "network online"; do not let anything pull in the wait.
in_tree systemctl disable systemd-networkd-wait-online.service >/dev/null 2>&1 || true
# No background work in a VM that lives for one job; no mounts or modules it does not use.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
  getty@tty1.service dev-hugepages.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
  modprobe@drm.service modprobe@efi_pstore.service modprobe@fuse.service systemd-pstore.service; do
  in_tree systemctl mask "$unit" >/dev/null 2>&1 || true
done
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
# (-fw_cfg name=opt/ekiden/<item>,file=…): the SSH host key, the runner's authorized key and
# the hostname. Runs at every boot, before sshd; fails (and so sshd fails) without them.
set -eu
modprobe qemu_fw_cfg 2>/dev/null || true
d=/sys/firmware/qemu_fw_cfg/by_name/opt/ekiden
i=0
until [ -r "$d/host_key/raw" ] && [ -r "$d/authorized_keys/raw" ]; do
  i=$((i + 1))
  if [ "$i" -ge 100 ]; then
    echo "ekiden-guest-init: no per-VM configuration in $d" >&2
    exit 1
  fi
  sleep 0.1
done
umask 077
install -m 600 -o root -g root "$d/host_key/raw" /etc/ssh/ssh_host_ed25519_key.new
mv -f /etc/ssh/ssh_host_ed25519_key.new /etc/ssh/ssh_host_ed25519_key
ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key >/etc/ssh/ssh_host_ed25519_key.pub
chmod 644 /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 700 -o runner -g runner /home/runner/.ssh
install -m 600 -o runner -g runner "$d/authorized_keys/raw" /home/runner/.ssh/authorized_keys
if [ -r "$d/hostname/raw" ]; then
  h=$(tr -cd 'a-z0-9.-' <"$d/hostname/raw" | cut -c1-63)
  if [ -n "$h" ]; then
    printf '%s\n' "$h" >/etc/hostname
    printf '%s' "$h" >/proc/sys/kernel/hostname
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' "$h" >/etc/hosts
  fi
fi
EOF
chmod 0755 "$TREE/usr/local/sbin/ekiden-guest-init"
cat >"$TREE/etc/systemd/system/ekiden-guest-init.service" <<'EOF'
[Unit]
Description=Ekiden per-VM configuration (SSH host key, authorized key, hostname) from fw_cfg
DefaultDependencies=no
After=local-fs.target systemd-remount-fs.service systemd-modules-load.service
Before=ssh.service systemd-networkd.service sysinit.target shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/ekiden-guest-init
StandardOutput=journal+console

[Install]
WantedBy=sysinit.target
RequiredBy=ssh.service
EOF
cat >"$TREE/etc/systemd/system/ekiden-growfs.service" <<'EOF'
[Unit]
Description=Grow the root filesystem to the size of the VM's disk
After=local-fs.target

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
sed -e '/^After=/s/network\.target *//' "$TREE/lib/systemd/system/ssh.service" >"$TREE/etc/systemd/system/ssh.service"
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

# ---------------------------------------------------------------- kernel, initrd, disk

KVER="$(basename "$(ls -1 "$TREE"/boot/vmlinuz-* | sort -V | tail -n 1)")"
KVER="${KVER#vmlinuz-}"
[ -f "$TREE/boot/initrd.img-$KVER" ] || in_tree update-initramfs -c -k "$KVER" >/dev/null
STAGE="$WORK/out"
mkdir -p "$STAGE"
install -m 0644 "$TREE/boot/vmlinuz-$KVER" "$STAGE/vmlinuz"
install -m 0644 "$TREE/boot/initrd.img-$KVER" "$STAGE/initrd.img"
NODE_VERSION="$(in_tree node --version 2>/dev/null || echo unknown)"

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
