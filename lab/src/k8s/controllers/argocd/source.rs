//! Loading an Application's target state (the repo-server's part): directory sources of
//! the repositories the lab was told about, and, for anything else (a Helm chart, an
//! unknown repository), the error a repo-server that cannot reach the repository returns.

use serde_json::{Value, json};

use super::repo::{self, Directory, GitRepo};

fn str_of<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// What the source yields, or the condition message saying why it cannot be loaded.
pub struct Target {
    /// One per source (multi-source Applications report them as `revisions`).
    pub revisions: Vec<String>,
    /// `spec.sources` rather than `spec.source`.
    pub multi: bool,
    pub manifests: Vec<Value>,
}

impl Target {
    /// The revision(s) as `status.sync` and `syncResult` carry them: (key, value).
    pub fn revision_field(&self) -> (&'static str, Value) {
        if self.multi {
            ("revisions", json!(self.revisions))
        } else {
            (
                "revision",
                json!(self.revisions.first().cloned().unwrap_or_default()),
            )
        }
    }
}

/// The Application's sources: `spec.sources` (multi-source) or `spec.source`.
pub fn sources_of(app: &Value) -> (Vec<Value>, bool) {
    match app["spec"]["sources"].as_array() {
        // Argo CD: `sources`, when not empty, wins over `source`.
        Some(list) if !list.is_empty() => (list.clone(), true),
        _ => (vec![app["spec"]["source"].clone()], false),
    }
}

/// Load the target state of every source; the first that fails names its index, as the
/// controller's `Failed to load target state` condition does.
pub fn target(repos: &[GitRepo], sources: &[Value], multi: bool) -> Result<Target, String> {
    let mut t = Target {
        revisions: Vec::new(),
        multi,
        manifests: Vec::new(),
    };
    for (i, source) in sources.iter().enumerate() {
        let (revision, manifests) = target_one(repos, source).map_err(|e| {
            format!(
                "Failed to load target state: failed to generate manifest for source {} of {}: rpc error: code = Unknown desc = {e}",
                i + 1,
                sources.len()
            )
        })?;
        t.revisions.push(revision);
        t.manifests.extend(manifests);
    }
    Ok(t)
}

fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => u.host_str().unwrap_or_default().to_string(),
        // scp-like `git@host:org/repo` or an OCI reference `host/path`.
        Err(_) => {
            let rest = url.split_once('@').map_or(url, |(_, r)| r);
            rest.split([':', '/'])
                .next()
                .unwrap_or_default()
                .to_string()
        }
    }
}

/// Load one source (the repo-server's part): its revision and manifests. A source with
/// only a `ref` (values for another source) yields no manifests.
fn target_one(repos: &[GitRepo], source: &Value) -> Result<(String, Vec<Value>), String> {
    let url = str_of(source, "/repoURL");
    let host = host_of(url);
    let unreachable = format!("dial tcp: lookup {host}: no such host");
    if let Some(chart) = source["chart"].as_str().filter(|c| !c.is_empty()) {
        // The lab renders no charts: its repositories are as unreachable as the internet.
        if url.contains("://") {
            let index = format!("{}/index.yaml", url.trim_end_matches('/'));
            return Err(format!(
                "error fetching chart: failed to fetch chart: looks like \"{url}\" is not a valid chart repository or cannot be reached: Get \"{index}\": {unreachable}"
            ));
        }
        let version = str_of(source, "/targetRevision");
        return Err(format!(
            "error pulling OCI chart: failed to pull OCI chart: failed to do request: Head \"https://{}/v2/{chart}/manifests/{version}\": {unreachable}",
            url.split_once('/').map_or(url, |(h, _)| h)
        ));
    }
    let Some(checkout) = repo::find(repos, url) else {
        let refs = if url.contains("://") {
            format!(
                "Get \"{}/info/refs?service=git-upload-pack\": {unreachable}",
                url.trim_end_matches('/')
            )
        } else {
            unreachable
        };
        return Err(format!("failed to list refs: {refs}"));
    };
    let revision = repo::revision(&checkout.path);
    if source.get("ref").is_some() && source.get("path").is_none() {
        return Ok((revision, Vec::new()));
    }
    let path = str_of(source, "/path");
    let dir = checkout
        .path
        .join(path.trim_start_matches("./").trim_end_matches('/'));
    for (file, what) in [
        ("Chart.yaml", "Helm charts"),
        ("kustomization.yaml", "Kustomize overlays"),
    ] {
        if dir.join(file).is_file() {
            return Err(format!(
                "lab: the lab renders no {what} ({path}/{file}); only directories of plain manifests are applied"
            ));
        }
    }
    let manifests =
        repo::manifests(&checkout.path, path, &Directory::of(source)).map_err(|e| e.to_string())?;
    Ok((revision, manifests))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(sources: Value) -> String {
        let list = sources.as_array().cloned().unwrap_or_default();
        match target(&[], &list, list.len() > 1) {
            Err(e) => e,
            Ok(_) => panic!("loaded {sources}"),
        }
    }

    #[test]
    fn unreachable_repositories() {
        let pre = "Failed to load target state: failed to generate manifest for source";
        assert_eq!(
            err(json!([{"repoURL": "git@github.com:org/repo.git", "path": "x"}])),
            format!(
                "{pre} 1 of 1: rpc error: code = Unknown desc = failed to list refs: dial tcp: lookup github.com: no such host"
            )
        );
        assert_eq!(
            err(
                json!([{"repoURL": "ghcr.io/org/charts", "chart": "app", "targetRevision": "1.2.3"}])
            ),
            format!(
                "{pre} 1 of 1: rpc error: code = Unknown desc = error pulling OCI chart: failed to pull OCI chart: failed to do request: Head \"https://ghcr.io/v2/app/manifests/1.2.3\": dial tcp: lookup ghcr.io: no such host"
            )
        );
        let two = err(
            json!([{"repoURL": "https://x.example/r.git", "ref": "v"}, {"repoURL": "https://c.example", "chart": "c"}]),
        );
        assert!(two.starts_with(&format!("{pre} 1 of 2: ")), "{two}");
    }
}
