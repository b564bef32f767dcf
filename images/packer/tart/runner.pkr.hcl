# Ekiden macOS runner image for Tart: the base image (base.pkr.hcl) plus actions/runner of a
# given version unpacked in ~/actions-runner. Nothing is registered: Ekiden configures each
# VM's runner just in time (JIT config over SSH), so the image holds no token or credential.
#
#   packer init images/packer/tart
#   packer build -only 'tart-cli.runner' -var runner_version=2.336.0 images/packer/tart
#   tart push ekiden-macos-runner <registry>/ekiden-macos-runner:<tag>
#
# Needs a Mac with Tart and Packer >= 1.7 (packer-plugin-tart).

variable "runner_vm_base_name" {
  type        = string
  description = "The base image: a local Tart VM built by base.pkr.hcl, or its OCI reference."
  default     = "ekiden-macos-base"
}

variable "runner_vm_name" {
  type    = string
  default = "ekiden-macos-runner"
}

variable "runner_version" {
  type        = string
  description = "actions/runner release, e.g. 2.336.0 (GitHub refuses runners older than its minimum)."
  default     = "2.336.0"
}

variable "runner_arch" {
  type    = string
  default = "osx-arm64"
}

variable "runner_sha256" {
  type        = string
  description = "sha256 of the runner tarball (from the release notes); empty: not checked."
  default     = ""
}

source "tart-cli" "runner" {
  vm_base_name      = var.runner_vm_base_name
  vm_name           = var.runner_vm_name
  headless          = true
  create_grace_time = "30s"
  communicator      = "ssh"
  ssh_username      = "admin"
  ssh_password      = "admin"
  ssh_timeout       = "180s"
}

build {
  sources = ["source.tart-cli.runner"]

  provisioner "shell" {
    environment_vars = [
      "RUNNER_VERSION=${var.runner_version}",
      "RUNNER_ARCH=${var.runner_arch}",
      "RUNNER_SHA256=${var.runner_sha256}",
    ]
    script = "${path.root}/install-runner.sh"
  }

  provisioner "shell" {
    script = "${path.root}/scrub.sh"
  }
}
