//! The `terraform-provider-infraflux` binary: Terraform starts it and speaks protocol 6 to it.

use std::process::ExitCode;

fn main() -> ExitCode {
    tfplugin::serve::main(
        terraform_provider_infraflux::ADDRESS,
        terraform_provider_infraflux::InfraFlux::default,
    )
}
