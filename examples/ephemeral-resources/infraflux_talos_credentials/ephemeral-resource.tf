# Short-lived admin credentials signed from the cluster's secrets, for another provider's
# configuration: nothing of them is written to the plan or the state (Terraform >= 1.10).
ephemeral "infraflux_talos_credentials" "admin" {
  machine_secrets = infraflux_talos_cluster.this.machine_secrets
  cluster_name    = infraflux_talos_cluster.this.name
  endpoint        = infraflux_talos_cluster.this.endpoint
  talos_endpoints = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
  validity_hours  = 1
}

provider "kubernetes" {
  config_path = null
  host        = infraflux_talos_cluster.this.endpoint
  # The kubeconfig holds the CA and the client certificate; parse it with yamldecode:
  cluster_ca_certificate = base64decode(yamldecode(ephemeral.infraflux_talos_credentials.admin.kubeconfig).clusters[0].cluster["certificate-authority-data"])
  client_certificate     = base64decode(yamldecode(ephemeral.infraflux_talos_credentials.admin.kubeconfig).users[0].user["client-certificate-data"])
  client_key             = base64decode(yamldecode(ephemeral.infraflux_talos_credentials.admin.kubeconfig).users[0].user["client-key-data"])
}
