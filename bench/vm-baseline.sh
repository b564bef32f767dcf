#!/usr/bin/env bash
# Baseline of `npm run bench:vm` (bench/vm.ts): what an operator's bash loop does to get one
# runner going in a fresh QEMU VM, with no orchestration at all:
#
#   curl a JIT config → qemu-img create (qcow2 overlay) → qemu-system-x86_64 -daemonize
#   → poll `ssh` until the guest lets us in → launch the runner detached over ssh
#
# The QEMU arguments are the ones drivers/qemu.ts uses (machine, accel, cpu, memory, direct
# kernel boot, the per-VM SSH keys and hostname as fw_cfg files, user networking with the
# guest's sshd forwarded to a loopback port). bench/vm.ts generates the keys and passes
# everything in the environment:
#
#   VM_DIR          per-VM directory holding host_ed25519(.pub), client_ed25519(.pub), hostname;
#                   the overlay, console log and pid file go here too. Deleted on exit.
#   BASE_DISK KERNEL INITRD APPEND ACCEL(kvm|tcg) CPU_MODEL SMP MEMORY_MB VM_NAME VM_UUID MAC
#   SSH_PORT        free loopback port for the guest's sshd
#   SSH_USER RUNNER_DIR
#   GITHUB_API GITHUB_TOKEN GITHUB_REPO(owner/repo) RUNNER_NAME RUNNER_LABELS(JSON array)
#
# Prints one JSON line once the runner is launched: {"ssh_ms":…,"launch_ms":…},
# milliseconds since the script started. Then waits until its stdin closes, kills the VM and
# deletes VM_DIR (also on errors and on SIGINT/SIGTERM/SIGHUP).
set -euo pipefail

for v in VM_DIR BASE_DISK KERNEL INITRD APPEND ACCEL CPU_MODEL SMP MEMORY_MB VM_NAME VM_UUID MAC SSH_PORT SSH_USER RUNNER_DIR \
  GITHUB_API GITHUB_TOKEN GITHUB_REPO RUNNER_NAME RUNNER_LABELS; do
  if [ -z "${!v:-}" ]; then echo "vm-baseline.sh: $v is not set" >&2; exit 64; fi
done

cleanup() {
  local pid n=0
  pid=$(cat "$VM_DIR/qemu.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 200 ]; do n=$((n + 1)); sleep 0.05; done
  fi
  rm -rf "$VM_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }
T0=$(now_us)
ms_since_start() { echo $((($(now_us) - T0) / 1000)); }

# 1. A just-in-time runner configuration from the GitHub API (the token never goes on an argv).
jit_json=$(curl -fsS -X POST "$GITHUB_API/repos/$GITHUB_REPO/actions/runners/generate-jitconfig" \
  -H @<(printf 'Authorization: Bearer %s\n' "$GITHUB_TOKEN") \
  -H 'Accept: application/vnd.github+json' \
  --data-binary @<(printf '{"name":"%s","runner_group_id":1,"labels":%s}' "$RUNNER_NAME" "$RUNNER_LABELS"))
jit=$(sed -n 's/.*"encoded_jit_config" *: *"\([^"]*\)".*/\1/p' <<<"$jit_json")
if [ -z "$jit" ]; then echo "vm-baseline.sh: no encoded_jit_config in the API's answer" >&2; exit 1; fi

# 2. Copy-on-write overlay over the image's disk.
qemu-img create -q -f qcow2 -b "$BASE_DISK" -F qcow2 "$VM_DIR/disk.qcow2"

# 3. Boot, detached (QEMU forks into the background once the VM is set up).
accel=kvm
[ "$ACCEL" = tcg ] && accel=tcg,thread=multi
qemu-system-x86_64 \
  -name "$VM_NAME" -uuid "$VM_UUID" \
  -machine q35 -accel "$accel" -cpu "$CPU_MODEL" -smp "$SMP" -m "$MEMORY_MB" \
  -nodefaults -no-user-config -display none -monitor none \
  -serial "file:$VM_DIR/console.log" \
  -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" \
  -drive "if=virtio,file=$VM_DIR/disk.qcow2,format=qcow2,cache=writeback,discard=unmap" \
  -device virtio-rng-pci \
  -fw_cfg "name=opt/ekiden/host_key,file=$VM_DIR/host_ed25519" \
  -fw_cfg "name=opt/ekiden/host_key_pub,file=$VM_DIR/host_ed25519.pub" \
  -fw_cfg "name=opt/ekiden/authorized_keys,file=$VM_DIR/client_ed25519.pub" \
  -fw_cfg "name=opt/ekiden/hostname,file=$VM_DIR/hostname" \
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22" \
  -device "virtio-net-pci,netdev=n0,mac=$MAC" \
  -pidfile "$VM_DIR/qemu.pid" -daemonize

# 4. Poll until sshd lets us in.
SSH=(ssh -q -p "$SSH_PORT" -i "$VM_DIR/client_ed25519"
  -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
  -o ConnectTimeout=10 -o IdentitiesOnly=yes "$SSH_USER@127.0.0.1")
until "${SSH[@]}" true </dev/null 2>/dev/null; do sleep 0.25; done
ssh_ms=$(ms_since_start)

# 5. Launch the runner detached from the SSH session; the JIT config goes over stdin.
printf '%s\n' "$jit" | "${SSH[@]}" "read -r j; export ACTIONS_RUNNER_INPUT_JITCONFIG=\"\$j\"; cd $RUNNER_DIR || exit 66;
  setsid nohup ./run.sh </dev/null >>\"\$HOME/runner.out\" 2>&1 &"
launch_ms=$(ms_since_start)

printf '{"ssh_ms":%s,"launch_ms":%s}\n' "$ssh_ms" "$launch_ms"

# 6. Keep the VM until the caller is done with it (stdin closes), then the EXIT trap cleans up.
cat >/dev/null || true
