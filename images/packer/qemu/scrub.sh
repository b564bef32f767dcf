#!/bin/sh
# Last provisioner of runner.pkr.hcl (as root): removes what the build VM's boot and Packer's
# login left on the disk that is per-VM or secret, so the image holds none of it (every VM
# gets its own at boot from fw_cfg, see images/build-debian.sh: ekiden-guest-init).
set -eu
user_home=$(getent passwd "${EKIDEN_USER:-runner}" | cut -d: -f6)
# The build VM's SSH host key and Packer's throwaway authorized key.
rm -f /etc/ssh/ssh_host_*
if [ -n "$user_home" ] && [ -f "$user_home/.ssh/authorized_keys" ]; then
  : >"$user_home/.ssh/authorized_keys"
fi
# Hostname as the base image has it.
echo ekiden >/etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\tekiden\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >/etc/hosts
# An empty machine id: each VM gets its own (systemd.machine_id= on its kernel command line).
if mountpoint -q /etc/machine-id 2>/dev/null; then umount -l /etc/machine-id || true; fi
: >/etc/machine-id
# Login records, shell histories, apt lists and caches, temporary files.
for f in /var/log/wtmp /var/log/btmp /var/log/lastlog; do [ -f "$f" ] && : >"$f"; done
rm -f /root/.bash_history "$user_home/.bash_history" /var/log/*.log
rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
find /tmp /var/tmp -mindepth 1 -maxdepth 1 ! -name "$(basename "$0")" -exec rm -rf {} + 2>/dev/null || true
sync
