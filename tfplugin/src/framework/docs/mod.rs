//! Registry doc pages generated from a provider's schemas, in the layout `tfplugindocs` uses:
//! `docs/index.md`, `docs/resources/<name>.md`, `docs/data-sources/<name>.md`,
//! `docs/ephemeral-resources/<name>.md`.
//!
//! Descriptions live in the schema; prose lives in templates beside it
//! (`templates/index.md.tmpl`, `templates/resources/<name>.md.tmpl`, …) and examples in
//! `examples/<kind>/<full name>/`. A template may use:
//!
//! - `{{ name }}` — the full type name, e.g. `example_thing`;
//! - `{{ description }}` — the schema's top-level description;
//! - `{{ schema }}` — the `## Schema` section ([`schema_markdown`]);
//! - `{{ example }}` / `{{ example "file.tf" }}` — an example file as a `terraform` code block
//!   (default `resource.tf`, `data-source.tf`, `ephemeral-resource.tf` or `provider.tf`);
//! - `{{ import }}` — `import.sh` as a `shell` code block.
//!
//! Without a template a page gets the description, the example and the schema.

mod schema;

pub use schema::schema_markdown;

use std::path::{Path, PathBuf};

use crate::framework::Provider;
use crate::framework::schema::Schema;

/// One kind of page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Provider,
    Resource,
    DataSource,
    Ephemeral,
}

impl Kind {
    /// Directory under `docs/`, `templates/` and `examples/`.
    fn dir(self) -> &'static str {
        match self {
            Kind::Provider => "provider",
            Kind::Resource => "resources",
            Kind::DataSource => "data-sources",
            Kind::Ephemeral => "ephemeral-resources",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Kind::Provider => "Provider",
            Kind::Resource => "Resource",
            Kind::DataSource => "Data Source",
            Kind::Ephemeral => "Ephemeral Resource",
        }
    }
    fn example_file(self) -> &'static str {
        match self {
            Kind::Provider => "provider.tf",
            Kind::Resource => "resource.tf",
            Kind::DataSource => "data-source.tf",
            Kind::Ephemeral => "ephemeral-resource.tf",
        }
    }
}

/// What went wrong generating a page.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    /// A template or example could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A template uses a placeholder this generator does not know.
    #[error("{path}: unknown placeholder {placeholder:?}")]
    Placeholder {
        /// The template.
        path: PathBuf,
        /// The placeholder.
        placeholder: String,
    },
}

/// Every page of `provider`: paths relative to `root` (the repository), and their text.
/// `display_name` is the provider's name in titles, e.g. `InfraFlux`.
pub fn pages(
    provider: &dyn Provider,
    display_name: &str,
    root: &Path,
) -> Result<Vec<(PathBuf, String)>, DocsError> {
    let prefix = format!("{}_", provider.type_name());
    let mut out = vec![page(
        root,
        Kind::Provider,
        provider.type_name(),
        "",
        display_name,
        &provider.schema(),
    )?];
    let mut entries: Vec<(Kind, &'static str, Schema)> = Vec::new();
    entries.extend(
        provider
            .resources()
            .iter()
            .map(|r| (Kind::Resource, r.type_name(), r.schema())),
    );
    entries.extend(
        provider
            .data_sources()
            .iter()
            .map(|d| (Kind::DataSource, d.type_name(), d.schema())),
    );
    entries.extend(
        provider
            .ephemeral_resources()
            .iter()
            .map(|e| (Kind::Ephemeral, e.type_name(), e.schema())),
    );
    for (kind, name, schema) in entries {
        let short = name.strip_prefix(&prefix).unwrap_or(name);
        out.push(page(root, kind, name, short, display_name, &schema)?);
    }
    Ok(out)
}

fn read_optional(path: &Path) -> Result<Option<String>, DocsError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DocsError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn page(
    root: &Path,
    kind: Kind,
    name: &str,
    short: &str,
    display_name: &str,
    schema: &Schema,
) -> Result<(PathBuf, String), DocsError> {
    let (doc, template, examples) = match kind {
        Kind::Provider => (
            PathBuf::from("docs/index.md"),
            root.join("templates/index.md.tmpl"),
            root.join("examples/provider"),
        ),
        _ => (
            PathBuf::from(format!("docs/{}/{short}.md", kind.dir())),
            root.join(format!("templates/{}/{short}.md.tmpl", kind.dir())),
            root.join(format!("examples/{}/{name}", kind.dir())),
        ),
    };
    let description = schema.block.description.trim();
    let body = match read_optional(&template)? {
        Some(t) => t,
        None => format!(
            "# {name} ({})\n\n{{{{ description }}}}\n\n## Example Usage\n\n{{{{ example }}}}\n\n{{{{ schema }}}}",
            kind.title()
        ),
    };
    let body = expand(&body, &template, &examples, kind, name, description, schema)?;
    let title = match kind {
        Kind::Provider => format!("Provider: {display_name}"),
        _ => format!("{name} {} - {display_name}", kind.title()),
    };
    let mut front = format!("---\npage_title: \"{title}\"\n");
    if kind != Kind::Provider {
        front.push_str("subcategory: \"\"\n");
    }
    front.push_str("description: |-\n");
    for line in description.lines() {
        front.push_str(&format!("  {line}\n"));
    }
    front.push_str("---\n\n");
    Ok((doc, format!("{front}{}\n", body.trim_end())))
}

fn expand(
    template: &str,
    path: &Path,
    examples: &Path,
    kind: Kind,
    name: &str,
    description: &str,
    schema: &Schema,
) -> Result<String, DocsError> {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + len].trim();
        let (word, arg) = inner.split_once(' ').unwrap_or((inner, ""));
        let arg = arg.trim().trim_matches('"');
        let code = |file: &str, lang: &str| -> Result<String, DocsError> {
            let p = examples.join(file);
            let text = std::fs::read_to_string(&p).map_err(|source| DocsError::Read {
                path: p.clone(),
                source,
            })?;
            Ok(format!("```{lang}\n{}\n```", text.trim_end()))
        };
        match word {
            "name" => out.push_str(name),
            "description" => out.push_str(description),
            "schema" => out.push_str(schema_markdown(schema).trim_end()),
            "example" if arg.is_empty() => out.push_str(&code(kind.example_file(), "terraform")?),
            "example" => out.push_str(&code(arg, "terraform")?),
            "import" => out.push_str(&code("import.sh", "shell")?),
            _ => {
                return Err(DocsError::Placeholder {
                    path: path.to_owned(),
                    placeholder: inner.to_owned(),
                });
            }
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}
