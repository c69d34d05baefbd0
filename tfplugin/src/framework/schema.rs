//! Typed schema builder: attributes, nested attributes and blocks, with the behaviour
//! (validators, defaults, plan modifiers) attached where Terraform users expect it.

use std::sync::Arc;

use super::planmod::PlanModifier;
use super::validate::Validator;
use crate::value::{Type, Value};

#[derive(Clone, Debug)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn new(block: Block) -> Self {
        Self { version: 0, block }
    }
    #[must_use]
    pub fn version(mut self, v: i64) -> Self {
        self.version = v;
        self
    }
    pub fn value_type(&self) -> Type {
        self.block.value_type()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Block {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    /// Markdown.
    pub description: String,
    pub deprecated: bool,
}

impl Block {
    pub fn new() -> Self {
        Self::default()
    }
    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }
    #[must_use]
    pub fn attr(mut self, a: Attribute) -> Self {
        self.attributes.push(a);
        self
    }
    #[must_use]
    pub fn block(mut self, b: NestedBlock) -> Self {
        self.blocks.push(b);
        self
    }
    /// The conventional `timeouts { create = "20m" ... }` block for the given operations.
    #[must_use]
    pub fn timeouts(self, ops: &[&str]) -> Self {
        let mut b = Block::new().description(
            "Time limits for operations, as Go-style durations (`30s`, `20m`, `1h30m`).",
        );
        for op in ops {
            b = b.attr(
                Attribute::string(*op)
                    .optional()
                    .description(format!("How long `{op}` may take."))
                    .validate(super::validate::duration()),
            );
        }
        self.block(NestedBlock::new("timeouts", Nesting::Single, b))
    }

    pub fn value_type(&self) -> Type {
        Type::object(
            self.attributes
                .iter()
                .map(|a| (a.name.clone(), a.value_type()))
                .chain(self.blocks.iter().map(|b| (b.name.clone(), b.value_type()))),
        )
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
    pub fn nested_block(&self, name: &str) -> Option<&NestedBlock> {
        self.blocks.iter().find(|b| b.name == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nesting {
    Single,
    /// Like Single, but never null: absent means an object of nulls.
    Group,
    List,
    Set,
    Map,
}

impl Nesting {
    fn wrap(self, t: Type) -> Type {
        match self {
            Nesting::Single | Nesting::Group => t,
            Nesting::List => Type::list(t),
            Nesting::Set => Type::set(t),
            Nesting::Map => Type::map(t),
        }
    }
}

#[derive(Clone, Debug)]
pub struct NestedBlock {
    pub name: String,
    pub nesting: Nesting,
    pub block: Block,
    pub min_items: i64,
    pub max_items: i64,
}

impl NestedBlock {
    pub fn new(name: impl Into<String>, nesting: Nesting, block: Block) -> Self {
        Self {
            name: name.into(),
            nesting,
            block,
            min_items: 0,
            max_items: 0,
        }
    }
    #[must_use]
    pub fn items(mut self, min: i64, max: i64) -> Self {
        self.min_items = min;
        self.max_items = max;
        self
    }
    pub fn value_type(&self) -> Type {
        self.nesting.wrap(self.block.value_type())
    }
}

#[derive(Clone, Debug)]
pub enum AttrKind {
    Primitive(Type),
    /// A nested attribute (protocol 6): `x = { ... }` / `x = [{ ... }]` in HCL.
    Nested {
        nesting: Nesting,
        attributes: Vec<Attribute>,
    },
}

#[derive(Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub kind: AttrKind,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    /// Never stored in plan or state (Terraform ≥ 1.11).
    pub write_only: bool,
    pub deprecation: Option<String>,
    /// Markdown.
    pub description: String,
    pub validators: Vec<Arc<dyn Validator>>,
    pub plan_modifiers: Vec<Arc<dyn PlanModifier>>,
    /// Used when the configuration leaves an optional+computed attribute null.
    pub default: Option<Value>,
    /// Values that differ in form but mean the same (case, key order, `32G` vs `32768M`):
    /// the prior value is kept, so no diff is planned and computed values stay known.
    pub semantic_equal: Option<SemanticEq>,
}

type EqFn = dyn Fn(&Value, &Value) -> bool + Send + Sync;

/// `f(a, b)` is true when `a` and `b` mean the same to the remote system.
#[derive(Clone)]
pub struct SemanticEq(pub Arc<EqFn>);

impl std::fmt::Debug for SemanticEq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SemanticEq")
    }
}

impl Attribute {
    pub fn new(name: impl Into<String>, ty: Type) -> Self {
        Self {
            name: name.into(),
            kind: AttrKind::Primitive(ty),
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            write_only: false,
            deprecation: None,
            description: String::new(),
            validators: Vec::new(),
            plan_modifiers: Vec::new(),
            default: None,
            semantic_equal: None,
        }
    }
    pub fn string(name: impl Into<String>) -> Self {
        Self::new(name, Type::String)
    }
    pub fn number(name: impl Into<String>) -> Self {
        Self::new(name, Type::Number)
    }
    pub fn bool(name: impl Into<String>) -> Self {
        Self::new(name, Type::Bool)
    }
    pub fn nested(name: impl Into<String>, nesting: Nesting, attributes: Vec<Attribute>) -> Self {
        let mut a = Self::new(name, Type::Dynamic);
        a.kind = AttrKind::Nested {
            nesting,
            attributes,
        };
        a
    }

    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    #[must_use]
    pub fn computed(mut self) -> Self {
        self.computed = true;
        self
    }
    #[must_use]
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    #[must_use]
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    #[must_use]
    pub fn deprecated(mut self, message: impl Into<String>) -> Self {
        self.deprecation = Some(message.into());
        self
    }
    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }
    #[must_use]
    pub fn validate(mut self, v: Arc<dyn Validator>) -> Self {
        self.validators.push(v);
        self
    }
    #[must_use]
    pub fn plan_modifier(mut self, m: Arc<dyn PlanModifier>) -> Self {
        self.plan_modifiers.push(m);
        self
    }
    #[must_use]
    pub fn semantic_equal(
        mut self,
        f: impl Fn(&Value, &Value) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.semantic_equal = Some(SemanticEq(Arc::new(f)));
        self
    }
    /// A default makes the attribute optional and computed, as Terraform requires.
    #[must_use]
    pub fn default(mut self, v: impl Into<Value>) -> Self {
        self.default = Some(v.into());
        self.optional = true;
        self.computed = true;
        self
    }

    pub fn value_type(&self) -> Type {
        match &self.kind {
            AttrKind::Primitive(t) => t.clone(),
            AttrKind::Nested {
                nesting,
                attributes,
            } => nesting.wrap(Type::object(
                attributes.iter().map(|a| (a.name.clone(), a.value_type())),
            )),
        }
    }
}

/// Problems in a schema itself: these are provider bugs, caught by a unit test per provider.
pub fn check_schema(block: &Block, at: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for a in &block.attributes {
        let here = format!("{at}{}", a.name);
        if !names.insert(a.name.as_str()) {
            errs.push(format!("{here}: duplicate name"));
        }
        if !(a.required || a.optional || a.computed) {
            errs.push(format!("{here}: must be required, optional or computed"));
        }
        if a.required && (a.optional || a.computed) {
            errs.push(format!("{here}: required excludes optional and computed"));
        }
        if a.write_only && a.computed {
            errs.push(format!("{here}: write-only attributes cannot be computed"));
        }
        if a.default.is_some() && !(a.optional && a.computed) {
            errs.push(format!("{here}: a default needs optional and computed"));
        }
        if a.description.is_empty() {
            errs.push(format!("{here}: needs a description (it becomes the docs)"));
        }
        if let AttrKind::Nested { attributes, .. } = &a.kind {
            let inner = Block {
                attributes: attributes.clone(),
                ..Block::default()
            };
            errs.extend(check_schema(&inner, &format!("{here}.")));
        }
    }
    for b in &block.blocks {
        if !names.insert(b.name.as_str()) {
            errs.push(format!("{at}{}: duplicate name", b.name));
        }
        errs.extend(check_schema(&b.block, &format!("{at}{}.", b.name)));
    }
    errs
}
