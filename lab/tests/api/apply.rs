//! Running-mode ApplyConfiguration: AUTO picks reboot or not as Talos does, NO_REBOOT refuses
//! what needs a reboot, dry runs print Talos's summary and a config diff, STAGED and TRY.

use std::time::Duration;

use infraflux_lab::talos::proto::machine::RebootRequest;
use infraflux_lab::talos::proto::machine::apply_configuration_request::Mode as ApplyMode;
use sha2::Digest;
use tonic::Code;

use crate::common::T;
use crate::k8s::{admin, apply, fast, install};
use crate::talos_kit::{self as kit, Cluster};

fn with_mode(
    cfg: &str,
    mode: ApplyMode,
    dry_run: bool,
) -> infraflux_lab::talos::proto::machine::ApplyConfigurationRequest {
    let mut r = apply(cfg);
    r.mode = mode as i32;
    r.dry_run = dry_run;
    r
}

fn hash(cfg: &str) -> String {
    hex::encode(sha2::Sha256::digest(cfg.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_modes_in_running_mode() {
    let t = T::with(fast()).await;
    let c = Cluster::with_endpoint("https://127.77.27.10:6443");
    let base = c.config("controlplane");
    let mut m = install(&t, &c, 471, "127.77.27.1", &base).await;
    // A live change (kubelet) and one that needs a reboot (machine.token).
    let live = base.replacen(
        "  certSANs: []\n",
        "  certSANs: []\n  kubelet:\n    extraArgs:\n      v: \"2\"\n",
        1,
    );
    let reboot = c.config_with(
        "controlplane",
        infraflux_lab::talos::pki::ED25519_KEY_LABEL,
        "zzzzzz.0123456789abcdef",
    );

    // Dry runs: mode decided, nothing applied, Talos's summary with a unified diff.
    let r = m
        .apply_configuration(with_mode(&live, ApplyMode::Auto, true))
        .await
        .expect("dry")
        .into_inner();
    let msg = &r.messages[0];
    assert_eq!(msg.mode, ApplyMode::NoReboot as i32);
    assert!(
        msg.mode_details.starts_with("Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\n\n--- a\n+++ b\n@@ "),
        "{}",
        msg.mode_details
    );
    assert!(
        msg.mode_details
            .contains("\n+  kubelet:\n+    extraArgs:\n+      v: \"2\"\n"),
        "{}",
        msg.mode_details
    );
    let r = m
        .apply_configuration(with_mode(&base, ApplyMode::Auto, true))
        .await
        .expect("dry")
        .into_inner();
    assert_eq!(
        r.messages[0].mode_details,
        "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\n\nNo changes."
    );
    let r = m
        .apply_configuration(with_mode(&reboot, ApplyMode::Auto, true))
        .await
        .expect("dry")
        .into_inner();
    assert_eq!(r.messages[0].mode, ApplyMode::Reboot as i32);
    assert!(r.messages[0].mode_details.starts_with(
        "Dry run summary:\nApplied configuration with a reboot (skipped in dry-run).\n"
    ));
    assert_eq!(
        kit::wait_stage(&t, 471, "running").await["config_hash"],
        hash(&base)
    );

    // NO_REBOOT refuses a change that needs a reboot, with the diff of what is left.
    let e = m
        .apply_configuration(with_mode(&reboot, ApplyMode::NoReboot, false))
        .await
        .expect_err("needs reboot");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with(
            "this config change can't be applied in immediate mode\ndiff:\n--- a\n+++ b\n@@ "
        ),
        "{}",
        e.message()
    );
    assert!(
        e.message()
            .contains("\n-  token: abcdef.0123456789abcdef\n+  token: zzzzzz.0123456789abcdef\n"),
        "{}",
        e.message()
    );

    // AUTO, live change: no reboot.
    let r = m
        .apply_configuration(with_mode(&live, ApplyMode::Auto, false))
        .await
        .expect("auto")
        .into_inner();
    assert_eq!(
        (r.messages[0].mode, r.messages[0].mode_details.as_str()),
        (
            ApplyMode::NoReboot as i32,
            "Applied configuration without a reboot"
        )
    );
    assert_eq!(
        kit::wait_stage(&t, 471, "running").await["config_hash"],
        hash(&live)
    );

    // STAGED: active after the next reboot.
    let r = m
        .apply_configuration(with_mode(&base, ApplyMode::Staged, false))
        .await
        .expect("staged")
        .into_inner();
    assert_eq!(
        (r.messages[0].mode, r.messages[0].mode_details.as_str()),
        (
            ApplyMode::Staged as i32,
            "Staged configuration to be applied after the next reboot"
        )
    );
    assert_eq!(
        kit::wait_stage(&t, 471, "running").await["config_hash"],
        hash(&live)
    );
    m.reboot(RebootRequest::default()).await.expect("reboot");
    kit::wait_stage(&t, 471, "rebooting").await;
    kit::wait_node(&t, 471, |n| {
        n["stage"] == "running" && n["config_hash"] == hash(&base)
    })
    .await;
    let mut m = admin(&t, &c, 471, "127.77.27.1").await;

    // TRY: applied live, reverted after the timeout.
    let mut r = with_mode(&live, ApplyMode::Try, false);
    r.try_mode_timeout = Some(prost_types::Duration {
        seconds: 0,
        nanos: 300_000_000,
    });
    let r = m.apply_configuration(r).await.expect("try").into_inner();
    assert_eq!(r.messages[0].mode, ApplyMode::Try as i32);
    assert_eq!(
        r.messages[0].mode_details,
        "Applied configuration without a reboot\nThe config is applied in 'try' mode and will be automatically reverted back in 300ms"
    );
    assert_eq!(
        kit::wait_stage(&t, 471, "running").await["config_hash"],
        hash(&live)
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        kit::wait_stage(&t, 471, "running").await["config_hash"],
        hash(&base)
    );

    // AUTO, change that needs a reboot: REBOOT with Talos's reason appended; the node reboots.
    let r = m
        .apply_configuration(with_mode(&reboot, ApplyMode::Auto, false))
        .await
        .expect("auto")
        .into_inner();
    assert_eq!(r.messages[0].mode, ApplyMode::Reboot as i32);
    assert!(
        r.messages[0].mode_details.starts_with("Applied configuration with a reboot: this config change can't be applied in immediate mode\ndiff:\n"),
        "{}",
        r.messages[0].mode_details
    );
    kit::wait_stage(&t, 471, "rebooting").await;
    kit::wait_node(&t, 471, |n| {
        n["stage"] == "running" && n["config_hash"] == hash(&reboot)
    })
    .await;

    // No v1alpha1 document: Talos's own message.
    let e = m
        .apply_configuration(apply(
            "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: x\n",
        ))
        .await
        .expect_err("no v1alpha1");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "the applied machine configuration doesn't contain v1alpha1 config, did you mean to patch the machine config instead?"
        )
    );
    t.lab.shutdown().await;
}
