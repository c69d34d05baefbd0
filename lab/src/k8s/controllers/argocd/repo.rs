//! The repositories the lab can read: repository URLs mapped to local checkouts, and what a
//! directory source yields (Argo CD's repo-server for plain manifests): every `.yaml`, `.yml`
//! and `.json` file under the source path (sub-directories with `directory.recurse`),
//! filtered by `directory.include` / `directory.exclude` globs, split into documents.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha1::{Digest, Sha1};

/// A repository URL the lab serves from a local directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRepo {
    /// As Applications name it in `spec.source.repoURL`.
    pub url: String,
    /// A checkout (or any directory) whose files are the repository's content.
    pub path: PathBuf,
}

impl GitRepo {
    /// Parse `URL=LOCAL_PATH` (the `--git-repo` flag); the URL may contain `=` only before
    /// the last one.
    pub fn parse(spec: &str) -> Option<GitRepo> {
        let (url, path) = spec.rsplit_once('=')?;
        (!url.is_empty() && !path.is_empty()).then(|| GitRepo {
            url: url.to_string(),
            path: PathBuf::from(path),
        })
    }
}

/// Argo CD compares repository URLs normalised: case-insensitively, without a trailing
/// slash or `.git`.
pub fn normalise(url: &str) -> String {
    let u = url.trim().trim_end_matches('/').to_ascii_lowercase();
    u.strip_suffix(".git").unwrap_or(&u).to_string()
}

/// The checkout serving `url`, if the lab was told about it.
pub fn find<'a>(repos: &'a [GitRepo], url: &str) -> Option<&'a GitRepo> {
    let want = normalise(url);
    repos.iter().find(|r| normalise(&r.url) == want)
}

/// Why a directory source yields no manifests (the repo-server's error text).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("{0}: app path does not exist")]
    NoPath(String),
    #[error("{0}: app path is absolute or escapes the repository")]
    Escapes(String),
    #[error("failed to read {0}: {1}")]
    Read(String, String),
    #[error("failed to unmarshal {0}: {1}")]
    Parse(String, String),
    #[error("{0}: Object 'Kind' is missing in document {1}")]
    NoKind(String, usize),
}

/// The directory options of a source (`spec.source.directory`).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub recurse: bool,
    pub include: Option<String>,
    pub exclude: Option<String>,
}

impl Directory {
    pub fn of(source: &Value) -> Directory {
        let d = &source["directory"];
        let glob = |k: &str| d[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
        Directory {
            recurse: d["recurse"].as_bool().unwrap_or(false),
            include: glob("include"),
            exclude: glob("exclude"),
        }
    }
}

/// The manifests at `path` in the checkout `root`, in file order (sorted paths), each
/// with the file it came from.
pub fn manifests(root: &Path, path: &str, dir: &Directory) -> Result<Vec<Value>, SourceError> {
    let rel = path.trim_start_matches("./").trim_end_matches('/');
    if Path::new(rel).is_absolute() || rel.split('/').any(|p| p == "..") {
        return Err(SourceError::Escapes(path.to_string()));
    }
    let base = if rel.is_empty() || rel == "." {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    if !base.is_dir() {
        return Err(SourceError::NoPath(path.to_string()));
    }
    let mut files = Vec::new();
    walk(&base, &base, dir.recurse, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for rel in files {
        let matches = |g: &Option<String>| g.as_deref().map(|g| glob(g, &rel));
        if matches(&dir.include) == Some(false) || matches(&dir.exclude) == Some(true) {
            continue;
        }
        let text = std::fs::read_to_string(base.join(&rel))
            .map_err(|e| SourceError::Read(rel.clone(), e.to_string()))?;
        out.extend(documents(&rel, &text)?);
    }
    Ok(out)
}

fn walk(base: &Path, dir: &Path, recurse: bool, out: &mut Vec<String>) -> Result<(), SourceError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| SourceError::Read(dir.display().to_string(), e.to_string()))?;
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            // A checkout's .git is not content.
            if recurse && name != ".git" {
                walk(base, &p, recurse, out)?;
            }
            continue;
        }
        let manifest = [".yaml", ".yml", ".json"].iter().any(|x| name.ends_with(x));
        if manifest && let Ok(rel) = p.strip_prefix(base) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// The objects of one file: YAML documents (empty ones skipped; a `List` is unpacked) or
/// one JSON value.
fn documents(file: &str, text: &str) -> Result<Vec<Value>, SourceError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = serde_json::to_value(
            <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
                .map_err(|e| SourceError::Parse(file.to_string(), e.to_string()))?,
        )
        .map_err(|e| SourceError::Parse(file.to_string(), e.to_string()))?;
        if v.is_null() {
            continue;
        }
        if v["kind"].as_str().is_none_or(str::is_empty) {
            return Err(SourceError::NoKind(file.to_string(), i + 1));
        }
        if v["kind"].as_str().is_some_and(|k| k.ends_with("List")) && v["items"].is_array() {
            out.extend(v["items"].as_array().into_iter().flatten().cloned());
        } else {
            out.push(v);
        }
    }
    Ok(out)
}

/// The revision Argo CD would report: HEAD's commit when `root` is a git checkout (read
/// from `.git`), else a SHA-1 over the files' paths and contents (a stand-in commit that
/// changes whenever the content does).
pub fn revision(root: &Path) -> String {
    head_commit(root).unwrap_or_else(|| content_hash(root))
}

fn head_commit(root: &Path) -> Option<String> {
    let git = root.join(".git");
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(r) = head.strip_prefix("ref: ") else {
        return is_sha(head).then(|| head.to_string());
    };
    if let Ok(s) = std::fs::read_to_string(git.join(r)) {
        return is_sha(s.trim()).then(|| s.trim().to_string());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (sha, name) = l.split_once(' ')?;
        (name == r && is_sha(sha)).then(|| sha.to_string())
    })
}

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn content_hash(root: &Path) -> String {
    let mut files = Vec::new();
    let _ = walk(root, root, true, &mut files);
    files.sort();
    let mut h = Sha1::new();
    for f in files {
        h.update(f.as_bytes());
        h.update([0]);
        h.update(std::fs::read(root.join(&f)).unwrap_or_default());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Glob match as Argo CD's include/exclude patterns (gobwas glob without separators):
/// `*` matches any run of characters (`/` included), `?` one character, `[abc]` / `[a-z]`
/// a class, `{a,b}` alternatives.
pub fn glob(pattern: &str, text: &str) -> bool {
    expand(pattern).iter().any(|p| {
        let p: Vec<char> = p.chars().collect();
        let t: Vec<char> = text.chars().collect();
        simple(&p, &t)
    })
}

/// Brace alternatives expanded (nesting allowed).
fn expand(p: &str) -> Vec<String> {
    let Some(open) = p.find('{') else {
        return vec![p.to_string()];
    };
    let mut depth = 0;
    let mut close = None;
    let mut parts = Vec::new();
    let mut start = open + 1;
    for (i, c) in p.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    parts.push(&p[start..i]);
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => {
                parts.push(&p[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![p.to_string()];
    };
    let (head, tail) = (&p[..open], &p[close + 1..]);
    parts
        .iter()
        .flat_map(|alt| expand(&format!("{head}{alt}{tail}")))
        .collect()
}

fn simple(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|i| simple(&p[1..], &t[i..])),
        Some('?') => !t.is_empty() && simple(&p[1..], &t[1..]),
        Some('[') => {
            let Some(end) = p.iter().position(|c| *c == ']') else {
                return t.first() == Some(&'[') && simple(&p[1..], &t[1..]);
            };
            let Some(c) = t.first() else { return false };
            let class = &p[1..end];
            let (neg, class) = match class.first() {
                Some('!') | Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != neg && simple(&p[end + 1..], &t[1..])
        }
        Some(x) => t.first() == Some(x) && simple(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_urls() {
        let inc = "{project.yaml,*/application.yaml}";
        assert!(glob(inc, "project.yaml"));
        assert!(glob(inc, "cilium/application.yaml"));
        assert!(!glob(inc, "cilium/values.yaml"));
        assert!(!glob(inc, "application.yaml"));
        assert!(glob("*.y?ml", "a/b.yaml"));
        assert!(glob("[a-c]*.json", "b.json") && !glob("[!a-c]*.json", "b.json"));
        assert_eq!(
            normalise("https://Git.example/Org/Repo.git/"),
            "https://git.example/org/repo"
        );
        let r = GitRepo::parse("https://x/y.git=/tmp/a").expect("spec");
        assert_eq!(
            (r.url.as_str(), r.path.to_str()),
            ("https://x/y.git", Some("/tmp/a"))
        );
        assert!(GitRepo::parse("nourl").is_none());
    }

    #[test]
    fn directory_sources() {
        let d = tempfile_dir();
        std::fs::create_dir_all(d.join("apps/a")).expect("mkdir");
        std::fs::write(
            d.join("apps/project.yaml"),
            "kind: AppProject\napiVersion: argoproj.io/v1alpha1\nmetadata: {name: p}\n",
        )
        .expect("w");
        std::fs::write(
            d.join("apps/a/application.yaml"),
            "---\n---\nkind: Application\napiVersion: argoproj.io/v1alpha1\nmetadata: {name: a}\n",
        )
        .expect("w");
        std::fs::write(d.join("apps/a/values.yaml"), "replicas: 2\n").expect("w");
        let inc = Directory {
            recurse: true,
            include: Some("{project.yaml,*/application.yaml}".into()),
            exclude: None,
        };
        let got = manifests(&d, "apps", &inc).expect("manifests");
        let names: Vec<&str> = got
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["a", "p"]);
        // Without the filter the values file is read and is no object.
        let all = Directory {
            recurse: true,
            ..Directory::default()
        };
        assert_eq!(
            manifests(&d, "apps", &all),
            Err(SourceError::NoKind("a/values.yaml".into(), 1))
        );
        // Not recursing: only the top level.
        assert_eq!(
            manifests(&d, "apps", &Directory::default())
                .expect("flat")
                .len(),
            1
        );
        assert_eq!(
            manifests(&d, "nope", &all),
            Err(SourceError::NoPath("nope".into()))
        );
        assert!(matches!(
            manifests(&d, "../x", &all),
            Err(SourceError::Escapes(_))
        ));
        let r1 = revision(&d);
        std::fs::write(d.join("apps/project.yaml"), "kind: AppProject\n").expect("w");
        assert_ne!(revision(&d), r1);
        let _ = std::fs::remove_dir_all(&d);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "lab-argocd-repo-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }
}
