//! `make demo`'s script end to end (without waiting for Ctrl-C): the README's first command
//! must work on a fresh checkout, beside other labs, and again after Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use acceptance_tests::{bin_dir, root};
use serde_json::Value as Json;

/// One demo directory; `make demo-down` runs when it is dropped, whatever happened.
struct Demo {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Demo {
    fn new() -> Demo {
        let dir = tempfile::Builder::new()
            .prefix("infraflux-demo-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path().join("demo");
        Demo { _dir: dir, path }
    }

    fn run(&self, args: &[&str]) -> (Output, String) {
        let out = Command::new("bash")
            .arg(root().join("scripts/demo.sh"))
            .args(args)
            .env("INFRAFLUX_DEMO_DIR", &self.path)
            .env("INFRAFLUX_BIN_DIR", bin_dir())
            .env("INFRAFLUX_DEMO_WAIT", "0")
            .output()
            .expect("run scripts/demo.sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out, text)
    }

    /// The demo's output `nodes`, as the script saved it.
    fn nodes(&self) -> Json {
        let bytes = std::fs::read(self.path.join("nodes.json")).expect("nodes.json");
        serde_json::from_slice(&bytes).expect("nodes.json parses")
    }

    /// Stop its lab as Ctrl-C would (the lab's process gets SIGINT), leaving `.demo/` behind.
    fn interrupt_lab(&self) {
        let pid = std::fs::read_to_string(self.path.join("lab/lab.pid")).expect("lab.pid");
        let pid: i32 = pid.trim().parse().expect("pid");
        // SAFETY: a plain signal to a process this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        while Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let (out, _) = self.run(&["down"]);
        if !std::thread::panicking() {
            assert!(out.status.success(), "demo down failed");
            assert!(!self.path.exists(), "demo-down removes the demo directory");
        }
    }
}

fn assert_applied(text: &str, nodes: &Json) {
    assert!(text.contains("etcd members: 3"), "{text}");
    for phase in [
        "[1/6",
        "VMs: 5 running",
        "Talos: 5 machines installed",
        "etcd has 3 of 3 members",
        "Kubernetes API: up at",
        "nodes: 5 registered, 0 Ready",
        "Cilium: agents running, 5 of 5 nodes Ready",
        "Cilium 1.20.0: ",
        "5 nodes, 5 Ready",
    ] {
        assert!(text.contains(phase), "no progress line {phase:?}:\n{text}");
    }
    let running = nodes
        .as_object()
        .map(|m| m.values().filter(|n| n["stage"] == "running").count());
    assert_eq!(running, Some(5), "{nodes:#}");
}

/// The loopback block (`127.N.0.0/24`) the demo's machines got.
fn block(nodes: &Json) -> String {
    let addr = nodes["cp-1"]["address"].as_str().expect("address");
    addr.split('.').nth(1).expect("octet").to_string()
}

#[test]
fn demo_applies_the_stack_to_the_lab_and_cleans_up() {
    let demo = Demo::new();
    let (out, text) = demo.run(&[]);
    assert!(out.status.success(), "make demo failed:\n{text}");
    assert_applied(&text, &demo.nodes());
    let kubeconfig = std::fs::read_to_string(demo.path.join("kubeconfig")).unwrap_or_default();
    assert!(
        kubeconfig.contains("current-context: admin@infraflux"),
        "{kubeconfig}"
    );

    // Run again with its lab still up: the same machines, nothing to do.
    let (out, again) = demo.run(&[]);
    assert!(out.status.success(), "second make demo failed:\n{again}");
    assert!(again.contains("continuing with the state"), "{again}");
    assert!(again.contains("No changes."), "{again}");
}

#[test]
fn two_demos_at_once_beside_a_taken_address() {
    // Someone else's machine sits where the first free block's first control plane would go.
    // Keep the listener of the first bind that succeeds: probing and binding again races with
    // the other demo tests of this binary, which take blocks too.
    let (first_free, _other) = (20..=250)
        .find_map(|n| {
            std::net::TcpListener::bind(format!("127.{n}.0.11:50000"))
                .ok()
                .map(|l| (n, l))
        })
        .expect("a free block");

    let (a, b) = (Demo::new(), Demo::new());
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.run(&[]));
        let tb = s.spawn(|| b.run(&[]));
        (ta.join().expect("demo a"), tb.join().expect("demo b"))
    });
    assert!(ra.0.status.success(), "demo a failed:\n{}", ra.1);
    assert!(rb.0.status.success(), "demo b failed:\n{}", rb.1);
    let (na, nb) = (a.nodes(), b.nodes());
    assert_applied(&ra.1, &na);
    assert_applied(&rb.1, &nb);
    assert_ne!(block(&na), block(&nb), "each demo has machines of its own");
    for nodes in [&na, &nb] {
        assert_ne!(
            block(nodes),
            first_free.to_string(),
            "the taken block is skipped"
        );
    }
}

#[test]
fn demo_again_after_ctrl_c_without_demo_down_starts_clean() {
    let demo = Demo::new();
    let (out, text) = demo.run(&[]);
    assert!(out.status.success(), "make demo failed:\n{text}");
    demo.interrupt_lab();

    // `.demo/` still holds the old state; its machines went with the lab.
    let (out, text) = demo.run(&[]);
    assert!(
        out.status.success(),
        "make demo after Ctrl-C failed:\n{text}"
    );
    assert!(
        text.contains("held state from a lab that is no longer running"),
        "{text}"
    );
    // 5 VMs, the machine secrets, the cluster and Cilium.
    assert!(text.contains("Resources: 8 added, 0 changed"), "{text}");
    assert_applied(&text, &demo.nodes());
}
