//! A schema as the Markdown "Schema" section of a Registry doc page (the layout
//! `tfplugindocs` writes): required, optional and read-only arguments, then one section per
//! nested block or nested attribute. Everything it says comes from the schema — descriptions,
//! defaults, validators and plan modifiers — so a page generated from it cannot drift.

use std::fmt::Write as _;

use crate::framework::schema::{AttrKind, Attribute, Block, NestedBlock, Nesting, Schema};
use crate::value::{Type, Value};

/// The `## Schema` section for `schema`.
pub fn schema_markdown(schema: &Schema) -> String {
    let mut out = String::from("## Schema\n");
    let mut nested = Vec::new();
    write_block(&mut out, &schema.block, "", &mut nested);
    // Breadth first, in the order they were met, as readers scroll.
    let mut i = 0;
    while i < nested.len() {
        let (anchor, title, body): (String, String, Section) = nested[i].clone();
        let _ = write!(
            out,
            "\n<a id=\"{anchor}\"></a>\n### Nested Schema for `{title}`\n"
        );
        let mut more = Vec::new();
        match body {
            Section::Block(b) => write_block(&mut out, &b, &title, &mut more),
            Section::Attributes(attrs) => {
                let b = Block {
                    attributes: attrs,
                    ..Block::default()
                };
                write_block(&mut out, &b, &title, &mut more)
            }
        }
        nested.extend(more);
        i += 1;
    }
    out
}

#[derive(Clone)]
enum Section {
    Block(Block),
    Attributes(Vec<Attribute>),
}

type Nested = Vec<(String, String, Section)>;

fn anchor(kind: &str, path: &str) -> String {
    format!("{kind}--{}", path.replace('.', "--"))
}

fn write_block(out: &mut String, block: &Block, prefix: &str, nested: &mut Nested) {
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let required: Vec<&Attribute> = block.attributes.iter().filter(|a| a.required).collect();
    let optional: Vec<&Attribute> = block.attributes.iter().filter(|a| a.optional).collect();
    let read_only: Vec<&Attribute> = block
        .attributes
        .iter()
        .filter(|a| a.computed && !a.optional && !a.required)
        .collect();
    let required_blocks: Vec<_> = block.blocks.iter().filter(|b| b.min_items > 0).collect();
    let optional_blocks: Vec<_> = block.blocks.iter().filter(|b| b.min_items == 0).collect();

    let mut section = |title: &str, attrs: &[&Attribute], blocks: &[&NestedBlock]| {
        if attrs.is_empty() && blocks.is_empty() {
            return;
        }
        let _ = write!(out, "\n### {title}\n\n");
        for a in attrs {
            let path = join(&a.name);
            let mut line = format!("- `{}` ({})", a.name, attr_type(a));
            if let AttrKind::Nested { attributes, .. } = &a.kind {
                let id = anchor("nestedatt", &path);
                let _ = write!(line, " (see [below for nested schema](#{id}))");
                nested.push((id, path, Section::Attributes(attributes.clone())));
            }
            let _ = writeln!(out, "{line}{}", attr_notes(a));
        }
        for b in blocks {
            let path = join(&b.name);
            let id = anchor("nestedblock", &path);
            let _ = writeln!(
                out,
                "- `{}` (Block{}{}) {}(see [below for nested schema](#{id}))",
                b.name,
                nesting_word(b.nesting),
                limits(b.min_items, b.max_items),
                sentence(&b.block.description),
            );
            nested.push((id, path, Section::Block(b.block.clone())));
        }
    };
    section("Required", &required, &required_blocks);
    section("Optional", &optional, &optional_blocks);
    section("Read-Only", &read_only, &[]);
}

fn nesting_word(n: Nesting) -> &'static str {
    match n {
        Nesting::Single | Nesting::Group => "",
        Nesting::List => " List",
        Nesting::Set => " Set",
        Nesting::Map => " Map",
    }
}

fn limits(min: i64, max: i64) -> String {
    match (min, max) {
        (0, 0) => String::new(),
        (0, max) => format!(", Max: {max}"),
        (min, 0) => format!(", Min: {min}"),
        (min, max) => format!(", Min: {min}, Max: {max}"),
    }
}

fn type_name(t: &Type) -> String {
    match t {
        Type::Bool => "Boolean".into(),
        Type::Number => "Number".into(),
        Type::String => "String".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_name(e)),
        Type::Set(e) => format!("Set of {}", type_name(e)),
        Type::Map(e) => format!("Map of {}", type_name(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

fn attr_type(a: &Attribute) -> String {
    let mut t = match &a.kind {
        AttrKind::Primitive(ty) => type_name(ty),
        AttrKind::Nested { nesting, .. } => match nesting {
            Nesting::Single | Nesting::Group => "Attributes".into(),
            Nesting::List => "Attributes List".into(),
            Nesting::Set => "Attributes Set".into(),
            Nesting::Map => "Attributes Map".into(),
        },
    };
    if a.sensitive {
        t.push_str(", Sensitive");
    }
    if a.write_only {
        t.push_str(", Write-only");
    }
    if a.deprecation.is_some() {
        t.push_str(", Deprecated");
    }
    t
}

/// A description as one sentence-ended paragraph, with a trailing space when not empty.
fn sentence(d: &str) -> String {
    let d = d.trim();
    if d.is_empty() {
        return String::new();
    }
    if d.ends_with(['.', '!', '?', ':']) || d.ends_with(".)") {
        format!("{d} ")
    } else {
        format!("{d}. ")
    }
}

fn attr_notes(a: &Attribute) -> String {
    let mut notes = sentence(&a.description);
    if let Some(d) = &a.default {
        let _ = write!(notes, "Default: `{}`. ", literal(d));
    }
    for v in &a.validators {
        notes.push_str(&capitalised(&sentence(&v.description())));
    }
    for m in &a.plan_modifiers {
        let d = m.description();
        // "keeps its value across updates" is how computed values behave; not worth a line.
        if d.contains("replaces") && !notes.contains("replaces") {
            notes.push_str(&capitalised(&sentence(&d)));
        }
    }
    if let Some(why) = &a.deprecation {
        let _ = write!(notes, "**Deprecated:** {} ", sentence(why).trim_end());
    }
    let notes = notes.trim_end();
    if notes.is_empty() {
        String::new()
    } else {
        format!(" {notes}")
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => crate::value::encode_json(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Attribute;
    use crate::framework::planmod::requires_replace;
    use crate::framework::validate::one_of;

    #[test]
    fn sections_say_what_the_schema_says() {
        let schema = Schema::new(
            Block::new()
                .attr(
                    Attribute::string("name")
                        .required()
                        .description("The name")
                        .plan_modifier(requires_replace()),
                )
                .attr(
                    Attribute::string("mode")
                        .optional()
                        .computed()
                        .default("auto")
                        .validate(one_of(&["auto", "manual"]))
                        .description("How."),
                )
                .attr(
                    Attribute::string("token")
                        .computed()
                        .sensitive()
                        .description("A secret."),
                )
                .block(
                    NestedBlock::new(
                        "disk",
                        Nesting::List,
                        Block::new()
                            .description("A disk")
                            .attr(Attribute::number("size").required().description("GiB.")),
                    )
                    .items(0, 4),
                ),
        );
        let md = schema_markdown(&schema);
        assert!(
            md.contains("- `name` (String) The name. Changing it replaces the resource."),
            "{md}"
        );
        assert!(
            md.contains(
                "- `mode` (String) How. Default: `\"auto\"`. Must be one of `auto`, `manual`."
            ),
            "{md}"
        );
        assert!(
            md.contains("### Read-Only\n\n- `token` (String, Sensitive) A secret."),
            "{md}"
        );
        assert!(
            md.contains("- `disk` (Block List, Max: 4) A disk. (see [below for nested schema](#nestedblock--disk))"),
            "{md}"
        );
        assert!(
            md.contains("<a id=\"nestedblock--disk\"></a>\n### Nested Schema for `disk`\n\n### Required\n\n- `size` (Number) GiB."),
            "{md}"
        );
    }
}
