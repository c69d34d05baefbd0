//! Running-mode `ApplyConfiguration` decisions as Talos makes them: which changes apply without
//! a reboot (Talos's `CanApplyImmediate`: the v1alpha1 document may differ only in live paths;
//! other documents always apply live), and the unified config diff its dry runs print.

use serde_json::Value;

/// `machine.*` fields Talos applies without a reboot.
const LIVE_MACHINE: &[&str] = &[
    "ca",
    "acceptedCAs",
    "time",
    "certSANs",
    "install",
    "network",
    "sysfs",
    "sysctls",
    "logging",
    "controlPlane",
    "kubelet",
    "kernel",
    "registries",
    "pods",
    "seccompProfiles",
    "nodeAnnotations",
    "nodeLabels",
    "nodeTaints",
];

/// `machine.features.*` fields Talos applies without a reboot.
const LIVE_FEATURES: &[&str] = &[
    "kubernetesTalosAPIAccess",
    "kubePrism",
    "hostDNS",
    "imageCache",
    "nodeAddressSortAlgorithm",
];

fn copy_field(from: &Value, to: &mut Value, key: &str) {
    let (Some(t), Some(f)) = (to.as_object_mut(), from.as_object()) else {
        return;
    };
    match f.get(key) {
        Some(v) => {
            t.insert(key.into(), v.clone());
        }
        None => {
            t.remove(key);
        }
    }
}

/// `Ok` when `new` differs from `current` (both v1alpha1 documents) only where Talos applies
/// changes live; else Talos's error with the remaining diff.
pub fn can_apply_immediate(current: &Value, new: &Value) -> Result<(), String> {
    let mut n = new.clone();
    for k in ["debug", "cluster"] {
        copy_field(current, &mut n, k);
    }
    if let (Some(cm), true) = (current.get("machine"), n.get("machine").is_some()) {
        let nm = n.get_mut("machine").expect("machine");
        for k in LIVE_MACHINE {
            copy_field(cm, nm, k);
        }
        if let (Some(cf), Some(nf)) = (cm.get("features"), nm.get_mut("features")) {
            for k in LIVE_FEATURES {
                copy_field(cf, nf, k);
            }
        }
    }
    if &n == current {
        return Ok(());
    }
    Err(format!(
        "this config change can't be applied in immediate mode\ndiff:\n{}",
        unified_diff(&to_yaml(current), &to_yaml(&n))
    ))
}

fn to_yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

/// A unified diff (`--- a`/`+++ b`, 3 lines of context) of two texts; empty when equal.
pub fn unified_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence table.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // Edit script: (kind, old index, new index, text).
    let mut ops: Vec<(char, usize, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i, j, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i, j, a[i]));
            i += 1;
        } else {
            ops.push(('+', i, j, b[j]));
            j += 1;
        }
    }
    if ops.iter().all(|o| o.0 == ' ') {
        return String::new();
    }
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &k in &changed {
        let start = k.saturating_sub(CONTEXT);
        let end = (k + CONTEXT + 1).min(ops.len());
        match hunks.last_mut() {
            Some(h) if start <= h.1 => h.1 = h.1.max(end),
            _ => hunks.push((start, end)),
        }
    }
    let mut out = String::from("--- a\n+++ b\n");
    for (s, e) in hunks {
        let lines = &ops[s..e];
        let from = lines.iter().filter(|o| o.0 != '+').count();
        let to = lines.iter().filter(|o| o.0 != '-').count();
        let range = |start: usize, count: usize| match count {
            0 => format!("{start},0"),
            1 => format!("{}", start + 1),
            n => format!("{},{n}", start + 1),
        };
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(lines[0].1, from),
            range(lines[0].2, to)
        ));
        for (k, _, _, text) in lines {
            out.push(*k);
            out.push_str(text);
            out.push('\n');
        }
    }
    out
}

/// A duration as Go's `time.Duration.String` prints it (`1m0s`, `30s`, `1h2m3s`, `500ms`).
pub fn go_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let h = (secs / 3600.0).floor() as u64;
    let m = ((secs - h as f64 * 3600.0) / 60.0).floor() as u64;
    let s = secs - h as f64 * 3600.0 - m as f64 * 60.0;
    let s = if s.fract() == 0.0 {
        format!("{}s", s as u64)
    } else {
        format!("{}s", format!("{s:.9}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn live_paths() {
        let cur = json!({"machine": {"type": "worker", "kubelet": {"a": 1}, "features": {"rbac": true}}, "cluster": {"x": 1}});
        let mut live = cur.clone();
        live["machine"]["kubelet"]["a"] = json!(2);
        live["cluster"]["x"] = json!(2);
        live["machine"]["features"]["kubePrism"] = json!({"enabled": true});
        assert_eq!(can_apply_immediate(&cur, &live), Ok(()));
        let mut reboot = cur.clone();
        reboot["machine"]["features"]["rbac"] = json!(false);
        let e = can_apply_immediate(&cur, &reboot).expect_err("needs a reboot");
        assert!(
            e.starts_with(
                "this config change can't be applied in immediate mode\ndiff:\n--- a\n+++ b\n@@"
            ),
            "{e}"
        );
        assert!(e.contains("-    rbac: true\n+    rbac: false\n"), "{e}");
    }

    #[test]
    fn diffs() {
        assert_eq!(unified_diff("a\nb\n", "a\nb\n"), "");
        assert_eq!(
            unified_diff("a\nb\nc\n", "a\nB\nc\n"),
            "--- a\n+++ b\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
        );
        assert_eq!(
            unified_diff("a\n", "a\nb\n"),
            "--- a\n+++ b\n@@ -1 +1,2 @@\n a\n+b\n"
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(std::time::Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(std::time::Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(std::time::Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(go_duration(std::time::Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(std::time::Duration::from_millis(200)), "200ms");
    }
}
