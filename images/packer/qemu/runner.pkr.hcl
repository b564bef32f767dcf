# Ekiden QEMU runner image: the Debian guest image (images/build-debian.sh) plus provisioning.
#
# Run by packer/qemu-build.ts (packer build -var-file=<build dir>/vars.json), which creates the
# per-build key pair, host key and hostname files these variables point at; everything else
# is read from the base image directory (manifest.json, disk.qcow2, vmlinuz, initrd.img).
# The guest takes them through QEMU fw_cfg (opt/ekiden/*, as the QEMU driver hands them), so
# no key is on any command line; Packer logs in as the image's user (manifest `username`,
# passwordless sudo) and runs the provisioners as root with sudo. scrub.sh runs last and
# removes the build VM's host key, authorized key, hostname and machine id from the disk.
# Output: ${var.output_dir}/disk.qcow2, a qcow2 overlay whose backing file is the base disk;
# packer/qemu-output.ts flattens it into a self-contained Ekiden image directory.
#
# Packer 1.6.6 (Debian) or later with the bundled qemu builder. Paths must be absolute.

variable "base_dir" {
  type        = string
  description = "Base image directory (manifest.json, disk.qcow2, vmlinuz, initrd.img), absolute."
}

variable "output_dir" {
  type        = string
  description = "Packer's output directory (must not exist), absolute."
}

variable "keys_dir" {
  type        = string
  description = "Per-build keys: client_ed25519(.pub) for Packer's login, host_ed25519(.pub) for the guest's sshd."
}

variable "hostname_file" {
  type        = string
  description = "File holding the build VM's hostname (handed to the guest via fw_cfg)."
}

variable "accelerator" {
  type    = string
  default = "tcg"
}

variable "memory" {
  type    = number
  default = 1024
}

variable "cpus" {
  type    = number
  default = 2
}

variable "ssh_port_min" {
  type    = number
  default = 2222
}

variable "ssh_port_max" {
  type    = number
  default = 4444
}

variable "ssh_timeout" {
  type    = string
  default = "10m"
}

variable "disk_size" {
  type        = string
  description = "Virtual size of the output disk: the base disk's (e.g. 8192M), so VMs can still grow it."
}

variable "console_log" {
  type        = string
  description = "File the build VM's serial console goes to, absolute."
}

variable "machine_id" {
  type        = string
  description = "32 hex digits: systemd.machine_id= of the build VM (not kept in the image)."
  default     = "0123456789abcdef0123456789abcdef"
}

variable "extra_append" {
  type        = string
  description = "Appended to the base image's kernel command line (e.g. mitigations=off under TCG)."
  default     = "mitigations=off"
}

variable "inline" {
  type        = list(string)
  description = "Shell commands run as root in the guest (one script, /bin/sh -e)."
  default     = []
}

variable "scripts" {
  type        = list(string)
  description = "Script files (absolute paths) run as root in the guest, in order, after inline."
  default     = []
}

locals {
  manifest = jsondecode(file("${var.base_dir}/manifest.json"))
  username = lookup(local.manifest, "username", "runner")
  append   = "${lookup(local.manifest, "append", "root=/dev/vda rw console=ttyS0")} systemd.machine_id=${var.machine_id} ${var.extra_append}"
}

source "qemu" "runner" {
  iso_url          = "${var.base_dir}/${lookup(local.manifest, "disk", "disk.qcow2")}"
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  skip_resize_disk = true
  disk_size        = var.disk_size
  skip_compaction  = true
  format           = "qcow2"
  output_directory = var.output_dir
  vm_name          = "disk.qcow2"
  accelerator      = var.accelerator
  machine_type     = "q35"
  memory           = var.memory
  cpus             = var.cpus
  headless         = true
  net_device       = "virtio-net"
  disk_interface   = "virtio"
  boot_wait        = "1s"

  qemu_img_args {
    create = ["-F", "qcow2"]
  }

  qemuargs = [
    ["-cpu", "max"],
    ["-kernel", "${var.base_dir}/${lookup(local.manifest, "kernel", "vmlinuz")}"],
    ["-initrd", "${var.base_dir}/${lookup(local.manifest, "initrd", "initrd.img")}"],
    ["-append", local.append],
    ["-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"],
    ["-fw_cfg", "name=opt/ekiden/host_key,file=${var.keys_dir}/host_ed25519"],
    ["-fw_cfg", "name=opt/ekiden/host_key_pub,file=${var.keys_dir}/host_ed25519.pub"],
    ["-fw_cfg", "name=opt/ekiden/authorized_keys,file=${var.keys_dir}/client_ed25519.pub"],
    ["-fw_cfg", "name=opt/ekiden/hostname,file=${var.hostname_file}"],
    ["-serial", "file:${var.console_log}"],
  ]

  communicator         = "ssh"
  ssh_username         = local.username
  ssh_private_key_file = "${var.keys_dir}/client_ed25519"
  ssh_timeout          = var.ssh_timeout
  host_port_min        = var.ssh_port_min
  host_port_max        = var.ssh_port_max
  # The random seed is saved when its unit stops: save it now and drop it, so no two VMs
  # start from the same seed file.
  shutdown_command = "sudo sh -c 'systemctl stop systemd-random-seed.service; rm -f /var/lib/systemd/random-seed; systemctl poweroff'"
  shutdown_timeout = "2m"
}

build {
  sources = ["source.qemu.runner"]

  provisioner "shell" {
    inline          = concat(var.inline, ["true"])
    execute_command = "chmod +x {{ .Path }}; sudo {{ .Vars }} {{ .Path }}"
  }

  provisioner "shell" {
    scripts          = concat(var.scripts, ["${path.root}/scrub.sh"])
    environment_vars = ["EKIDEN_USER=${local.username}"]
    execute_command  = "chmod +x {{ .Path }}; sudo {{ .Vars }} {{ .Path }}"
  }
}
