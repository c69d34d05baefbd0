variable "kubeconfig" {
  description = "Admin kubeconfig of the cluster (it may be unknown at plan: the cluster does not exist yet)."
  type        = string
  sensitive   = true
}

variable "hubble_relay" {
  description = "Run hubble-relay (cluster-wide flow observability)."
  type        = bool
  default     = true
}

variable "hubble_ui" {
  description = "Run the Hubble UI (needs the relay)."
  type        = bool
  default     = false
}

variable "cilium_operator_replicas" {
  description = "cilium-operator replicas; each needs a node of its own."
  type        = number
  default     = 2

  validation {
    condition     = var.cilium_operator_replicas >= 1 && var.cilium_operator_replicas <= 10
    error_message = "The cilium_operator_replicas value must be between 1 and 10."
  }
}
