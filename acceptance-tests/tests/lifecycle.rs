//! The framework through real Terraform (1.15.5 and 1.0.3), with the test provider.
//! One test per rule of Terraform's resource instance change lifecycle, and the full cycle:
//! apply → empty plan → in-place update → replace → import → destroy.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use acceptance_tests::{Tf, Work, both_terraforms};
use serde_json::Value as Json;

struct Fixture {
    work: Work,
    store: tempfile::TempDir,
}

impl Fixture {
    fn new(tf: &Tf) -> Fixture {
        let store = tempfile::tempdir().unwrap();
        Fixture {
            work: Work::new(tf),
            store,
        }
    }

    /// Write main.tf: the provider block plus `body`.
    fn config(&self, body: &str) {
        self.work.config(&format!(
            "terraform {{\n  required_providers {{\n    tftest = {{ source = \"infraflux/tftest\" }}\n  }}\n}}\n\nprovider \"tftest\" {{\n  dir = {:?}\n}}\n\n{body}\n",
            self.store.path()
        ));
    }

    fn objects(&self) -> Vec<Json> {
        objects(self.store.path())
    }
}

fn objects(dir: &Path) -> Vec<Json> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

fn thing(attrs: &str) -> String {
    format!("resource \"tftest_thing\" \"a\" {{\n{attrs}\n}}")
}

/// The planned change of one resource in `plan -out` JSON.
fn change<'a>(plan: &'a Json, address: &str) -> &'a Json {
    plan["resource_changes"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["address"] == address))
        .map(|c| &c["change"])
        .unwrap_or_else(|| panic!("{address} not in plan: {plan:#}"))
}

both_terraforms!(full_cycle, |tf: &Tf| {
    let f = Fixture::new(tf);
    let w = &f.work;
    f.config(&thing(
        "  name  = \"one\"\n  size  = 3\n  label = \"Hello\"\n  tags  = [\"b\", \"a\"]\n  secret = \"s3cret\"\n  port {\n    number = 80\n  }",
    ));
    w.init();

    // Create: computed values become known, defaults fill in, the remote normalises.
    let plan = w.plan_json();
    let c = change(&plan, "tftest_thing.a");
    assert_eq!(c["actions"], serde_json::json!(["create"]));
    assert_eq!(
        c["after"]["fingerprint"], "fp-one-3",
        "computed at plan time"
    );
    assert_eq!(c["after"]["mode"], "fast", "default is in the plan");
    assert_eq!(c["after_unknown"]["id"], true);
    assert_eq!(c["after_unknown"]["revision"], true);
    w.apply();
    let a = w.resource("tftest_thing.a");
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(a["revision"], 1);
    assert_eq!(a["fingerprint"], "fp-one-3");
    assert_eq!(
        a["port"][0]["protocol"], "tcp",
        "default inside a nested block"
    );
    assert_eq!(a["label"], "Hello", "the user's spelling is kept");
    assert_eq!(f.objects()[0]["label"], "hello", "the remote normalised it");
    w.assert_plan_empty();

    // The same value in another spelling is no change (config or prior value rule).
    f.config(&thing(
        "  name  = \"one\"\n  size  = 3\n  label = \"HELLO\"\n  tags  = [\"a\", \"b\"]\n  secret = \"s3cret\"\n  port {\n    number = 80\n  }",
    ));
    w.assert_plan_empty();

    // In-place update: id kept (UseStateForUnknown), revision unknown until apply.
    f.config(&thing(
        "  name  = \"one\"\n  size  = 4\n  label = \"HELLO\"\n  tags  = [\"a\", \"b\"]\n  secret = \"s3cret\"\n  port {\n    number = 80\n  }",
    ));
    let plan = w.plan_json();
    let c = change(&plan, "tftest_thing.a");
    assert_eq!(c["actions"], serde_json::json!(["update"]));
    assert_eq!(c["after"]["id"], id.as_str());
    assert_eq!(c["after"]["fingerprint"], "fp-one-4");
    assert_eq!(c["after_unknown"]["revision"], true);
    w.apply();
    let a = w.resource("tftest_thing.a");
    assert_eq!(
        (a["id"].as_str(), a["revision"].as_i64()),
        (Some(id.as_str()), Some(2))
    );
    w.assert_plan_empty();

    // Replace: RequiresReplace on name; the old object is deleted first.
    let cfg2 = thing(
        "  name  = \"two\"\n  size  = 4\n  label = \"HELLO\"\n  tags  = [\"a\", \"b\"]\n  secret = \"s3cret\"\n  port {\n    number = 80\n  }",
    );
    f.config(&cfg2);
    let plan = w.plan_json();
    assert_eq!(
        change(&plan, "tftest_thing.a")["actions"],
        serde_json::json!(["delete", "create"])
    );
    w.apply();
    let new_id = w.resource("tftest_thing.a")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_id, id);
    assert_eq!(f.objects().len(), 1, "no orphan of the replaced object");
    w.assert_plan_empty();

    // Import into a fresh state: the same configuration plans no change.
    let w2 = Work::new(tf);
    w2.config(&std::fs::read_to_string(w.path().join("main.tf")).unwrap());
    w2.init();
    let bad = w2.fails(&[
        "import",
        "-no-color",
        "-input=false",
        "tftest_thing.a",
        "nope",
    ]);
    assert!(
        bad.text()
            .contains("No object has id \"nope\"; check the id."),
        "{}",
        bad.all()
    );
    w2.ok(&[
        "import",
        "-no-color",
        "-input=false",
        "tftest_thing.a",
        &new_id,
    ]);
    assert_eq!(w2.resource("tftest_thing.a")["name"], "two");
    w2.assert_plan_empty();

    // Drift: an object deleted behind Terraform's back is planned again.
    w.destroy();
    assert!(f.objects().is_empty(), "destroy leaves nothing");
    assert!(w.state_addresses().is_empty());
});

both_terraforms!(
    bad_input_is_caught_at_validate_naming_the_attribute,
    |tf: &Tf| {
        let f = Fixture::new(tf);
        f.config(&thing("  name = \"x\"\n  size = 5000\n  mode = \"slow\"\n  port {\n    number = 0\n  }\n  timeouts {\n    create = \"ten minutes\"\n  }"));
        f.work.init();
        let o = f.work.fails(&["validate", "-no-color"]);
        let all = o.text();
        for needle in [
            "5000 is out of range; use a whole number from 0 to 1000.",
            "\"slow\" is not allowed; use one of `fast`, `safe`.",
            "0 is out of range; use a whole number from 1 to 65535.",
            "\"ten minutes\" is not a duration",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        // Terraform points at the attribute's line thanks to the attribute path.
        assert!(all.contains("size = 5000"), "{all}");
        assert!(f.objects().is_empty());
    }
);

both_terraforms!(
    failure_after_create_is_saved_tainted_and_converges,
    |tf: &Tf| {
        let f = Fixture::new(tf);
        let w = &f.work;
        f.config(&thing("  name = \"flaky\"\n  fail_after_create = true"));
        w.init();
        let o = w.apply_fails();
        assert!(o.all().contains("Failed after create"), "{}", o.all());
        assert_eq!(
            w.state_addresses(),
            vec!["tftest_thing.a"],
            "what exists is in state"
        );
        assert!(
            w.raw_state().contains("\"status\": \"tainted\""),
            "{}",
            w.raw_state()
        );
        assert_eq!(f.objects().len(), 1);

        f.config(&thing("  name = \"flaky\"\n  fail_after_create = false"));
        let (code, plan) = w.plan_code();
        assert_eq!(code, 2);
        assert!(
            plan.stdout.contains("1 to add, 0 to change, 1 to destroy"),
            "{}",
            plan.stdout
        );
        w.apply();
        assert_eq!(f.objects().len(), 1, "replaced, not duplicated");
        w.assert_plan_empty();
    }
);

both_terraforms!(interrupt_keeps_the_created_object_in_state, |tf: &Tf| {
    let f = Fixture::new(tf);
    let w = &f.work;
    f.config(&thing("  name = \"slow\"\n  delay_ms = 120000"));
    w.init();
    // Its own process group, so the signal reaches Terraform and its plugins as a terminal's would.
    let child = w
        .command(&["apply", "-auto-approve", "-no-color", "-input=false"])
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while f.objects().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "object never created"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Ctrl-C as a terminal sends it: SIGINT to the whole process group. Terraform then asks
    // the provider to stop (StopProvider); the provider itself must not die of the signal.
    let pgid = i32::try_from(child.id()).unwrap();
    // SAFETY: plain kill(2) on a process group this test created.
    unsafe { libc::kill(-pgid, libc::SIGINT) };
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(30),
        "stopped promptly"
    );
    assert!(!out.status.success());
    assert_eq!(
        w.state_addresses(),
        vec!["tftest_thing.a"],
        "the object is in state, not orphaned"
    );
    let id = f.objects()[0]["id"].as_str().unwrap().to_owned();
    assert!(w.raw_state().contains(&id));
    w.destroy();
    assert!(f.objects().is_empty());
});

both_terraforms!(write_only_values_never_reach_state, |tf: &Tf| {
    let f = Fixture::new(tf);
    let w = &f.work;
    f.config(&thing(
        "  name = \"wo\"\n  password_wo = \"hunter2-pw\"\n  password_wo_version = 1",
    ));
    w.init();
    if !tf.at_least(1, 11) {
        let o = w.fails(&["validate", "-no-color"]);
        assert!(
            o.text().contains("needs Terraform 1.11 or later"),
            "{}",
            o.all()
        );
        return;
    }
    w.apply();
    let a = w.resource("tftest_thing.a");
    assert!(a["password_wo"].is_null());
    let first_hash = a["password_hash"].as_str().unwrap().to_owned();
    assert!(
        !w.raw_state().contains("hunter2-pw"),
        "write-only value leaked into state"
    );
    // A new password without a version bump is not sent (and plans nothing).
    f.config(&thing(
        "  name = \"wo\"\n  password_wo = \"other-pw\"\n  password_wo_version = 1",
    ));
    w.assert_plan_empty();
    f.config(&thing(
        "  name = \"wo\"\n  password_wo = \"other-pw\"\n  password_wo_version = 2",
    ));
    w.apply();
    assert_ne!(
        w.resource("tftest_thing.a")["password_hash"]
            .as_str()
            .unwrap(),
        first_hash
    );
    assert!(!w.raw_state().contains("other-pw"));
    w.assert_plan_empty();
});

both_terraforms!(sensitive_values_are_masked_in_plans, |tf: &Tf| {
    let f = Fixture::new(tf);
    f.config(&thing("  name = \"s\"\n  secret = \"do-not-print-me\""));
    f.work.init();
    let (_, o) = f.work.plan_code();
    assert!(!o.all().contains("do-not-print-me"), "{}", o.all());
    assert!(o.stdout.contains("(sensitive value)"), "{}", o.stdout);
});

both_terraforms!(state_written_by_schema_version_0_is_upgraded, |tf: &Tf| {
    let f = Fixture::new(tf);
    let w = &f.work;
    // Version 0 of the schema called `size` `size_mb`; the remote object exists.
    let obj = serde_json::json!({"id": "legacy1", "name": "old", "size": 7, "mode": "fast", "revision": 3, "tags": null, "ports": null});
    std::fs::write(f.store.path().join("legacy1.json"), obj.to_string()).unwrap();
    let state = serde_json::json!({
        "version": 4, "terraform_version": "1.0.3", "serial": 1, "lineage": "5f1c1a52-0000-4000-8000-000000000001",
        "outputs": {},
        "resources": [{
            "mode": "managed", "type": "tftest_thing", "name": "a",
            "provider": "provider[\"registry.terraform.io/infraflux/tftest\"]",
            "instances": [{
                "schema_version": 0,
                "attributes": {"id": "legacy1", "name": "old", "size_mb": 7, "mode": "fast", "revision": 3, "fingerprint": "fp-old-7"},
                "sensitive_attributes": []
            }]
        }]
    });
    w.write("terraform.tfstate", &state.to_string());
    f.config(&thing("  name = \"old\"\n  size = 7"));
    w.init();
    w.assert_plan_empty();
    w.ok(&["apply", "-refresh-only", "-auto-approve", "-no-color"]);
    let a = w.resource("tftest_thing.a");
    assert_eq!(a["size"], 7, "size_mb became size");
    assert_eq!(a["revision"], 3);
});

both_terraforms!(remote_deletion_is_drift_that_plans_a_create, |tf: &Tf| {
    let f = Fixture::new(tf);
    let w = &f.work;
    f.config(&format!("{}\n\ndata \"tftest_object\" \"read\" {{\n  id = tftest_thing.a.id\n}}\n\noutput \"name\" {{\n  value = data.tftest_object.read.name\n}}", thing("  name = \"d\"")));
    w.init();
    w.apply();
    let o = w.ok(&["output", "-raw", "name"]);
    assert_eq!(o.stdout, "d", "data source read the object");
    for e in std::fs::read_dir(f.store.path()).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let (code, plan) = w.plan_code();
    assert_eq!(code, 2);
    assert!(
        plan.stdout.contains("tftest_thing.a will be created"),
        "{}",
        plan.stdout
    );
    w.apply();
    assert_eq!(f.objects().len(), 1);
});

#[test]
fn ephemeral_resources_functions_and_identity_on_terraform_1_15() {
    let tf = Tf::v1_15();
    let f = Fixture::new(&tf);
    let w = &f.work;
    f.config(
        "ephemeral \"tftest_token\" \"t\" {\n  seed = \"x1\"\n}\n\nresource \"tftest_thing\" \"a\" {\n  name                = provider::tftest::upper(\"abc\")\n  password_wo         = ephemeral.tftest_token.t.value\n  password_wo_version = 1\n}\n",
    );
    w.init();
    w.apply();
    let a = w.resource("tftest_thing.a");
    assert_eq!(a["name"], "ABC", "provider function ran");
    assert!(
        a["password_hash"].is_string(),
        "the ephemeral value reached the provider"
    );
    assert!(
        !w.raw_state().contains("tok-x1-ephemeral"),
        "ephemeral value never in state"
    );
    let id = a["id"].as_str().unwrap().to_owned();
    assert!(
        w.raw_state().contains("\"identity\""),
        "identity stored: {}",
        w.raw_state()
    );

    // Import by identity into a fresh state.
    let w2 = Work::new(&tf);
    w2.config(&format!(
        "terraform {{\n  required_providers {{\n    tftest = {{ source = \"infraflux/tftest\" }}\n  }}\n}}\nprovider \"tftest\" {{\n  dir = {:?}\n}}\nimport {{\n  to       = tftest_thing.b\n  identity = {{ id = \"{id}\" }}\n}}\nresource \"tftest_thing\" \"b\" {{\n  name = \"ABC\"\n}}\n",
        f.store.path()
    ));
    w2.init();
    let o = w2.apply();
    assert!(o.stdout.contains("1 imported"), "{}", o.stdout);
    assert_eq!(w2.resource("tftest_thing.b")["id"], id.as_str());

    // A function error names the argument.
    f.config("output \"x\" {\n  value = provider::tftest::upper(\"\")\n}\n");
    let o = w.fails(&["plan", "-no-color"]);
    assert!(o.all().contains("s must not be empty"), "{}", o.all());
}

both_terraforms!(
    shrink_replaces_grow_updates_and_private_state_survives,
    |tf: &Tf| {
        let f = Fixture::new(tf);
        let w = &f.work;
        let cfg = |size: i64| thing(&format!("  name = \"disk\"\n  size = {size}"));
        f.config(&cfg(4));
        w.init();
        w.apply();
        let a = w.resource("tftest_thing.a");
        let id = a["id"].as_str().unwrap().to_owned();
        w.assert_plan_empty();
        // Grow: in place; the update checks that private state from create came back.
        f.config(&cfg(5));
        w.apply();
        assert_eq!(w.resource("tftest_thing.a")["id"], id.as_str());
        // Shrink: RequiresReplaceIf.
        f.config(&cfg(3));
        let plan = w.plan_json();
        assert_eq!(
            change(&plan, "tftest_thing.a")["actions"],
            serde_json::json!(["delete", "create"])
        );
        let (_, o) = w.plan_code();
        assert!(o.stdout.contains("# forces replacement"), "{}", o.stdout);
        w.apply();
        assert_ne!(w.resource("tftest_thing.a")["id"], id.as_str());
        assert_eq!(f.objects().len(), 1);
    }
);

#[test]
fn nested_attributes_on_current_terraform() {
    // Terraform 1.0.x crashes on null nested attributes (its bug, in ProposedNew); see
    // test-provider/src/nested.rs. Provider resources use blocks while 1.0 is supported.
    let f = Fixture::new(&Tf::v1_15());
    let w = &f.work;
    let cfg = |meta: &str| {
        format!(
            "resource \"tftest_nested\" \"n\" {{\n{meta}  items = [{{ value = \"a\" }}, {{ value = \"b\" }}]\n}}"
        )
    };
    f.config(&cfg("  meta = { owner = \"me\" }\n"));
    w.init();
    let plan = w.plan_json();
    assert_eq!(
        change(&plan, "tftest_nested.n")["after"]["meta"]["stamp"],
        "by-me",
        "computed inside, known at plan"
    );
    w.apply();
    let n = w.resource("tftest_nested.n");
    assert_eq!(n["items"][1]["value"], "b");
    w.assert_plan_empty();
    f.config(&cfg("  meta = { owner = \"you\", level = 2 }\n"));
    w.apply();
    assert_eq!(w.resource("tftest_nested.n")["meta"]["stamp"], "by-you");
    w.assert_plan_empty();
    f.config(&cfg(""));
    w.apply();
    assert!(w.resource("tftest_nested.n")["meta"].is_null());
    w.assert_plan_empty();
}
