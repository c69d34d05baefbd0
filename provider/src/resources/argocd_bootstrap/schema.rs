//! The schema of `infraflux_argocd_bootstrap`: where the install manifest comes from, the typed
//! options of `infraflux-argocd`, the admin password, repository credentials and the root
//! Application.

use infraflux_argocd::versions::DEFAULT_VERSION;
use tfplugin::framework::planmod::use_state_for_unknown;
use tfplugin::framework::validate::one_of;
use tfplugin::{Attribute, Block, NestedBlock, Nesting, Schema, Type};

fn repository() -> Block {
    Block::new()
        .description(
            "A repository credential: a Secret labelled `argocd.argoproj.io/secret-type` in \
             Argo CD's namespace, named from the URL. Changing a credential changes only its \
             Secret.",
        )
        .attr(
            Attribute::string("url")
                .required()
                .description("The repository URL (or URL prefix with `kind = \"repo-creds\"`)."),
        )
        .attr(
            Attribute::string("type")
                .optional()
                .validate(one_of(&["git", "helm"]))
                .description("`git` (default) or `helm`."),
        )
        .attr(
            Attribute::string("kind")
                .optional()
                .validate(one_of(&["repository", "repo-creds"]))
                .description(
                    "`repository` (default: this repository) or `repo-creds` (a credential \
                     template for every repository under `url`).",
                ),
        )
        .attr(
            Attribute::string("username")
                .optional()
                .description("HTTPS user name (with `password`)."),
        )
        .attr(
            Attribute::string("password")
                .optional()
                .sensitive()
                .description("HTTPS password or access token."),
        )
        .attr(
            Attribute::string("ssh_private_key")
                .optional()
                .sensitive()
                .description(
                    "SSH private key (PEM or OpenSSH) for `ssh://` or `git@host:path` URLs.",
                ),
        )
}

fn root_app() -> Block {
    Block::new()
        .description(
            "The root Application (app-of-apps) in Argo CD's namespace: automated sync with \
             prune and self-heal, retries with backoff, `CreateNamespace=true`, \
             `ServerSideApply=true`, finalizer `resources-finalizer.argocd.argoproj.io`.",
        )
        .attr(
            Attribute::string("repo_url")
                .required()
                .description("The Git repository holding the child Applications."),
        )
        .attr(
            Attribute::string("target_revision")
                .optional()
                .description("Branch, tag or commit. Default `HEAD`."),
        )
        .attr(
            Attribute::string("path")
                .optional()
                .description("Folder of the child Applications. Default `gitops/argocd/apps`."),
        )
        .attr(Attribute::string("project").optional().description(
            "AppProject of the root Application. Default `default`; any other name also creates \
             that AppProject (sources: `repo_url`; destinations: every namespace of this cluster).",
        ))
        .attr(
            Attribute::string("name")
                .optional()
                .description("Name of the root Application. Default `root`."),
        )
}

fn on_destroy() -> Block {
    Block::new()
        .description("What `terraform destroy` does.")
        .attr(Attribute::bool("keep_applications").optional().description(
            "Remove the root Application's finalizer before deleting it, so the workloads Argo \
             CD deployed stay in the cluster (orphaned). Default `false`: the root Application \
             is deleted first and Argo CD's application controller deletes what it deployed.",
        ))
}

pub fn schema() -> Schema {
    Schema::new(
        Block::new()
            .description(
                "Argo CD installed from its upstream install manifest (checked by sha256 before \
                 anything is applied), applied server-side through the Kubernetes API only (no \
                 Argo CD API), with the admin password, repository credentials and a root \
                 Application. The plan lists each object that changes in `inventory`.",
            )
            .attr(
                Attribute::string("id")
                    .computed()
                    .plan_modifier(use_state_for_unknown())
                    .description("`<namespace>/argocd`."),
            )
            .attr(
                Attribute::string("kubeconfig")
                    .required()
                    .sensitive()
                    .description(
                        "An admin kubeconfig (YAML), e.g. `infraflux_talos_cluster.this.kubeconfig`. \
                         It may be unknown at plan: the plan needs no cluster.",
                    ),
            )
            .attr(
                Attribute::string("version")
                    .default(DEFAULT_VERSION)
                    .description(
                        "The Argo CD release, e.g. `v3.5.1` (the default). Versions the provider \
                         has no pinned sha256 for need `manifest_sha256`.",
                    ),
            )
            .attr(Attribute::string("manifest_url").optional().description(
                "Where to fetch the install manifest (HTTPS or HTTP GET at plan). Default: the \
                 release URL of `version` (`manifests/install.yaml`, or `manifests/ha/install.yaml` \
                 with `ha`).",
            ))
            .attr(Attribute::string("manifest_sha256").optional().description(
                "The sha256 (hex) the manifest must have. Default: the pinned digest of `version`. \
                 A mismatch fails the plan and nothing is applied.",
            ))
            .attr(Attribute::string("manifest_path").optional().description(
                "Read the install manifest from this file instead of fetching it (air-gapped \
                 sites). Conflicts with `manifest_url`.",
            ))
            .attr(
                Attribute::string("namespace")
                    .default("argocd")
                    .description(
                        "Argo CD's namespace (created). The manifest's ClusterRoleBinding \
                         subjects are moved along.",
                    ),
            )
            .attr(Attribute::bool("ha").optional().description(
                "Install the HA variant of the manifest. Default `false`.",
            ))
            .attr(
                Attribute::string("server_service_type")
                    .optional()
                    .validate(one_of(&["ClusterIP", "NodePort", "LoadBalancer"]))
                    .description("Type of the `argocd-server` Service. Default `ClusterIP`."),
            )
            .attr(Attribute::bool("insecure").optional().description(
                "Serve the API and UI over plain HTTP (`server.insecure`, for TLS terminated by \
                 an ingress). Default `false`.",
            ))
            .attr(
                Attribute::new("cm", Type::map(Type::String))
                    .optional()
                    .description("Extra `argocd-cm` keys (they win over the manifest's)."),
            )
            .attr(
                Attribute::new("cmd_params", Type::map(Type::String))
                    .optional()
                    .description("Extra `argocd-cmd-params-cm` keys."),
            )
            .attr(
                Attribute::new("resource_customizations", Type::map(Type::String))
                    .optional()
                    .description(
                        "Resource customisations, e.g. `health.cert-manager.io_Certificate` → \
                         Lua script; written as `resource.customizations.<key>` in `argocd-cm`.",
                    ),
            )
            .attr(
                Attribute::string("admin_password")
                    .optional()
                    .computed()
                    .sensitive()
                    .description(
                        "The `admin` password. Given, or generated once (32 letters and digits) \
                         and returned here. Stored in the cluster only as a bcrypt hash in \
                         `argocd-secret` (`admin.password`, `admin.passwordMtime`).",
                    ),
            )
            .attr(
                Attribute::new("inventory", Type::map(Type::String))
                    .computed()
                    .description(
                        "The applied objects: `<apiVersion> <Kind> <namespace>/<name>` → hash of \
                         the object as built. A plan shows which objects change; drift found by \
                         refresh shows as `drifted: <fields>`.",
                    ),
            )
            .attr(
                Attribute::string("server_address")
                    .computed()
                    .description(
                        "In-cluster address of the API and UI: `argocd-server.<namespace>.svc:443` \
                         (`:80` with `insecure`).",
                    ),
            )
            .block(NestedBlock::new("repository", Nesting::List, repository()))
            .block(NestedBlock::new("root_app", Nesting::Single, root_app()))
            .block(NestedBlock::new("on_destroy", Nesting::Single, on_destroy()))
            .timeouts(&["create", "update", "delete"]),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_schema_is_well_formed() {
        let errs = tfplugin::framework::schema::check_schema(&super::schema().block, "");
        assert!(errs.is_empty(), "{errs:#?}");
    }
}
