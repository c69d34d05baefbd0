# Argo CD on the cluster once Cilium made its nodes Ready; the platform comes from git.
resource "infraflux_argocd_bootstrap" "this" {
  kubeconfig = infraflux_talos_cluster.this.kubeconfig # may be unknown at plan
  version    = "v3.5.1"                                # sha256 pinned in the provider

  # Air-gapped: manifest_path = "${path.module}/argocd/install-v3.5.1.yaml"

  server_service_type = "LoadBalancer"
  insecure            = true # TLS terminated by the Gateway in front of it

  cm = {
    "timeout.reconciliation" = "120s"
  }
  resource_customizations = {
    "health.cert-manager.io_Certificate" = file("${path.module}/health/certificate.lua")
  }

  # admin_password = var.argocd_admin_password # else generated and returned (sensitive)

  repository {
    url      = "https://github.com/example/platform.git"
    username = "git"
    password = var.git_token
  }

  root_app {
    repo_url        = "https://github.com/example/platform.git"
    target_revision = "main"
    path            = "gitops/argocd/apps"
  }

  on_destroy {
    keep_applications = false # true: destroy leaves the workloads Argo CD deployed
  }

  depends_on = [infraflux_cilium_install.this]
}

output "argocd_admin_password" {
  value     = infraflux_argocd_bootstrap.this.admin_password
  sensitive = true
}
