# Ekiden macOS base image for Tart: a Cirrus Labs vanilla macOS image plus what every runner
# image needs (Xcode command-line tools, Homebrew, no sleep, no screensaver, no Spotlight
# indexing, automatic login of the admin user).
#
#   packer init images/packer/tart && packer build -only 'tart-cli.base' images/packer/tart
#   (or: packer build images/packer/tart/base.pkr.hcl)
#
# Needs a Mac with Tart and Packer >= 1.7 (packer-plugin-tart). admin/admin is the documented
# login of the Cirrus Labs images, not a secret; nothing else is baked in.

packer {
  required_plugins {
    tart = {
      version = ">= 1.12.0"
      source  = "github.com/cirruslabs/tart"
    }
  }
}

variable "base_vm_base_name" {
  type        = string
  description = "Clone source: an OCI image or a local Tart VM."
  default     = "ghcr.io/cirruslabs/macos-sequoia-vanilla:latest"
}

variable "base_vm_name" {
  type    = string
  default = "ekiden-macos-base"
}

variable "base_cpu_count" {
  type    = number
  default = 4
}

variable "base_memory_gb" {
  type    = number
  default = 8
}

variable "base_disk_size_gb" {
  type    = number
  default = 80
}

source "tart-cli" "base" {
  vm_base_name      = var.base_vm_base_name
  vm_name           = var.base_vm_name
  cpu_count         = var.base_cpu_count
  memory_gb         = var.base_memory_gb
  disk_size_gb      = var.base_disk_size_gb
  headless          = true
  create_grace_time = "30s"
  communicator      = "ssh"
  ssh_username      = "admin"
  ssh_password      = "admin"
  ssh_timeout       = "180s"
}

build {
  sources = ["source.tart-cli.base"]

  # Power: never sleep, no screensaver (a sleeping VM drops its runner's connection).
  provisioner "shell" {
    inline = [
      "sudo pmset -a sleep 0 displaysleep 0 disksleep 0 hibernatemode 0 powernap 0 standby 0 autorestart 1",
      "sudo systemsetup -setcomputersleep Never >/dev/null 2>&1 || true",
      "defaults -currentHost write com.apple.screensaver idleTime -int 0",
      "sudo defaults write /Library/Preferences/com.apple.screensaver loginWindowIdleTime -int 0",
    ]
  }

  # Spotlight indexing off: it only costs CPU and disk I/O in a one-job VM.
  provisioner "shell" {
    inline = ["sudo mdutil -a -i off"]
  }

  # Automatic login of admin (UI tests need a logged-in session).
  provisioner "shell" {
    script           = "${path.root}/auto-login.sh"
    environment_vars = ["EKIDEN_LOGIN_USER=admin", "EKIDEN_LOGIN_PASSWORD=admin"]
    execute_command  = "chmod +x {{ .Path }}; sudo {{ .Vars }} {{ .Path }}"
  }

  # Xcode command-line tools without the GUI: softwareupdate lists them while the
  # "install on demand" stub file exists.
  provisioner "shell" {
    script = "${path.root}/xcode-clt.sh"
  }

  # Homebrew, on the PATH of login shells.
  provisioner "shell" {
    inline = [
      "NONINTERACTIVE=1 /bin/bash -c \"$(curl -fsSL https://raw.githubusercontent.com/Homebrew/install/HEAD/install.sh)\"",
      "echo 'eval \"$(/opt/homebrew/bin/brew shellenv)\"' >> ~/.zprofile",
      "eval \"$(/opt/homebrew/bin/brew shellenv)\" && brew --version",
    ]
  }

  provisioner "shell" {
    script = "${path.root}/scrub.sh"
  }
}
