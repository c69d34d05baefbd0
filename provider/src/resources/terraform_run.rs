//! Whether the Terraform run this provider serves destroys.
//!
//! `terraform destroy` first validates and refreshes with the configuration: Terraform ≥ 1.3
//! calls ValidateResourceConfig with every value known, and 1.0–1.2 also plan every resource
//! (PlanResourceChange). An error from either aborts the destroy, so a configuration the
//! provider refuses would also block destroying what it describes, although destroy never uses
//! it. The protocol does not say which command runs; the command line of Terraform, our
//! parent process, does. Resources ask [`destroying`] and report their refusals as warnings.

use std::sync::OnceLock;

use tfplugin::{Diagnostics, diag::Severity};

/// Whether the parent process was started as `terraform destroy`, or `plan`/`apply` with
/// `-destroy` (also through `TF_CLI_ARGS`). Read once per process; `false` when unknown.
pub fn destroying() -> bool {
    static DESTROYING: OnceLock<bool> = OnceLock::new();
    *DESTROYING.get_or_init(|| {
        let parent = std::os::unix::process::parent_id();
        let args = std::fs::read(format!("/proc/{parent}/cmdline"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let env = std::fs::read(format!("/proc/{parent}/environ")).unwrap_or_default();
        let env_args = env
            .split(|c| *c == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == "TF_CLI_ARGS" || k.starts_with("TF_CLI_ARGS_"))
            .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .collect::<Vec<_>>();
        is_destroy(args.iter().chain(&env_args).map(String::as_str))
    })
}

/// `destroy` as a word of the command line, or the `-destroy` flag of plan and apply.
fn is_destroy<'a>(args: impl Iterator<Item = &'a str>) -> bool {
    let mut args = args.peekable();
    // The program (terraform, or an interpreter running a shim) is not an argument.
    args.next();
    args.any(|a| {
        matches!(
            a,
            "destroy" | "-destroy" | "--destroy" | "-destroy=true" | "--destroy=true"
        )
    })
}

/// While Terraform destroys, refusals of the configuration would only block the destroy:
/// they become warnings saying so.
pub fn demote_when_destroying(diags: &mut Diagnostics) {
    if !destroying() || !diags.has_errors() {
        return;
    }
    let mut out = Diagnostics::new();
    for mut d in std::mem::take(diags) {
        if d.severity == Severity::Error {
            d.severity = Severity::Warning;
            d.summary = format!("{} (ignored: this run destroys)", d.summary);
        }
        out.push(d);
    }
    *diags = out;
}

#[cfg(test)]
mod tests {
    use super::is_destroy;

    fn destroys(line: &str) -> bool {
        is_destroy(line.split(' '))
    }

    #[test]
    fn destroy_commands_are_recognised() {
        assert!(destroys("terraform destroy -auto-approve"));
        assert!(destroys("terraform -chdir=stack destroy"));
        assert!(destroys("terraform plan -destroy -out=p"));
        assert!(destroys("terraform apply -destroy"));
        // A shim run by an interpreter: the words after the program count.
        assert!(destroys("/venv/bin/python /tools/terraform-1.15 destroy"));
        assert!(!destroys("terraform apply -auto-approve"));
        assert!(!destroys("terraform plan -var name=destroy"));
        assert!(!destroys("destroy plan"));
    }
}
