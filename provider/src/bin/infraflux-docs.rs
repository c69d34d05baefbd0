//! `make docs`: write the Registry pages under `docs/` from the provider's schemas, the templates
//! in `templates/` and the examples in `examples/`. `--check` writes nothing and fails when a
//! page differs from what the schema says (what the test `docs_match_the_schema` asserts).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let provider = terraform_provider_infraflux::InfraFlux::default();
    let pages = match tfplugin::framework::docs::pages(&provider, "InfraFlux", &root) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("infraflux-docs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = 0;
    for (path, text) in pages {
        let file = root.join(&path);
        if std::fs::read_to_string(&file).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        if check {
            eprintln!(
                "{} differs from the schema; run `make docs`",
                path.display()
            );
            stale += 1;
        } else if let Err(e) = std::fs::create_dir_all(file.parent().unwrap_or(&root))
            .and_then(|()| std::fs::write(&file, text))
        {
            eprintln!("infraflux-docs: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        } else {
            println!("wrote {}", path.display());
        }
    }
    if stale > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
