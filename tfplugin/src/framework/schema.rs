//! Typed schema builder: attributes, nested attributes and blocks, with the behaviour
//! (validators, defaults, plan modifiers) attached where Terraform users expect it.

use std::sync::Arc;

use super::planmod::PlanModifier;
use super::validate::Validator;
use crate::value::{Type, Value};

/// The schema of a provider block, resource, data source or ephemeral resource.
#[derive(Clone, Debug)]
pub struct Schema {
    /// Raised when the state's shape changes; older states go through `upgrade_state`.
    pub version: i64,
    /// The top-level block.
    pub block: Block,
}

impl Schema {
    /// Version 0 of `block`.
    pub fn new(block: Block) -> Self {
        Self { version: 0, block }
    }
    /// The same schema at version `v`.
    #[must_use]
    pub fn version(mut self, v: i64) -> Self {
        self.version = v;
        self
    }
    /// The object type of its values.
    pub fn value_type(&self) -> Type {
        self.block.value_type()
    }
}

/// Attributes and nested blocks: a schema's top level, or the inside of a nested block.
#[derive(Clone, Debug, Default)]
pub struct Block {
    /// Its attributes.
    pub attributes: Vec<Attribute>,
    /// Its nested blocks.
    pub blocks: Vec<NestedBlock>,
    /// Markdown.
    pub description: String,
    /// Shown by Terraform as deprecated.
    pub deprecated: bool,
}

impl Block {
    /// An empty block.
    pub fn new() -> Self {
        Self::default()
    }
    /// With a Markdown description.
    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }
    /// With one more attribute.
    #[must_use]
    pub fn attr(mut self, a: Attribute) -> Self {
        self.attributes.push(a);
        self
    }
    /// With one more nested block.
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

    /// The object type of its values: attributes and blocks by name.
    pub fn value_type(&self) -> Type {
        Type::object(
            self.attributes
                .iter()
                .map(|a| (a.name.clone(), a.value_type()))
                .chain(self.blocks.iter().map(|b| (b.name.clone(), b.value_type()))),
        )
    }

    /// The attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
    /// The nested block `name`.
    pub fn nested_block(&self, name: &str) -> Option<&NestedBlock> {
        self.blocks.iter().find(|b| b.name == name)
    }
}

/// How many of a nested block (or nested attribute object) there are, and how they are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nesting {
    /// At most one; null when absent.
    Single,
    /// Like Single, but never null: absent means an object of nulls.
    Group,
    /// An ordered list.
    List,
    /// A set: no order, no duplicates.
    Set,
    /// A map by label.
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

/// A block inside a block: `disk { ... }` in HCL.
#[derive(Clone, Debug)]
pub struct NestedBlock {
    /// The block type's name.
    pub name: String,
    /// How many there are.
    pub nesting: Nesting,
    /// What each holds.
    pub block: Block,
    /// Fewest allowed (0: no limit).
    pub min_items: i64,
    /// Most allowed (0: no limit).
    pub max_items: i64,
}

impl NestedBlock {
    /// A nested block with no limit on how many.
    pub fn new(name: impl Into<String>, nesting: Nesting, block: Block) -> Self {
        Self {
            name: name.into(),
            nesting,
            block,
            min_items: 0,
            max_items: 0,
        }
    }
    /// With at least `min` and at most `max` of them.
    #[must_use]
    pub fn items(mut self, min: i64, max: i64) -> Self {
        self.min_items = min;
        self.max_items = max;
        self
    }
    /// The type of its value: the block's object type in its collection.
    pub fn value_type(&self) -> Type {
        self.nesting.wrap(self.block.value_type())
    }
}

/// What an attribute holds.
#[derive(Clone, Debug)]
pub enum AttrKind {
    /// A value of a type (which may be a collection or object type).
    Primitive(Type),
    /// A nested attribute (protocol 6): `x = { ... }` / `x = [{ ... }]` in HCL.
    Nested {
        /// How many objects there are.
        nesting: Nesting,
        /// The attributes of each.
        attributes: Vec<Attribute>,
    },
}

/// One attribute, with the behaviour attached to it. Built with the constructors and
/// builder methods below.
#[derive(Clone, Debug)]
pub struct Attribute {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub kind: AttrKind,
    /// The configuration must set it.
    pub required: bool,
    /// The configuration may set it.
    pub optional: bool,
    /// The provider may set it (when the configuration does not).
    pub computed: bool,
    /// Terraform hides its value in output.
    pub sensitive: bool,
    /// Never stored in plan or state (Terraform ≥ 1.11).
    pub write_only: bool,
    /// Why it is deprecated and what to use instead; a warning when set.
    pub deprecation: Option<String>,
    /// Markdown.
    pub description: String,
    /// Checks of its value.
    pub validators: Vec<Arc<dyn Validator>>,
    /// Adjustments of its plan.
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
    /// An attribute of type `ty`; say whether it is required, optional or computed.
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
    /// A string attribute.
    pub fn string(name: impl Into<String>) -> Self {
        Self::new(name, Type::String)
    }
    /// A number attribute.
    pub fn number(name: impl Into<String>) -> Self {
        Self::new(name, Type::Number)
    }
    /// A bool attribute.
    pub fn bool(name: impl Into<String>) -> Self {
        Self::new(name, Type::Bool)
    }
    /// A nested attribute: objects of `attributes`, nested as `nesting`.
    pub fn nested(name: impl Into<String>, nesting: Nesting, attributes: Vec<Attribute>) -> Self {
        let mut a = Self::new(name, Type::Dynamic);
        a.kind = AttrKind::Nested {
            nesting,
            attributes,
        };
        a
    }

    /// The configuration must set it.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// The configuration may set it.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    /// The provider sets it (or, with `optional`, when the configuration does not).
    #[must_use]
    pub fn computed(mut self) -> Self {
        self.computed = true;
        self
    }
    /// Terraform hides its value in output.
    #[must_use]
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    /// Never stored in plan or state (Terraform ≥ 1.11).
    #[must_use]
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    /// Deprecated: setting it warns with `message`.
    #[must_use]
    pub fn deprecated(mut self, message: impl Into<String>) -> Self {
        self.deprecation = Some(message.into());
        self
    }
    /// With a Markdown description (it becomes the docs).
    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }
    /// With one more validator.
    #[must_use]
    pub fn validate(mut self, v: Arc<dyn Validator>) -> Self {
        self.validators.push(v);
        self
    }
    /// With one more plan modifier.
    #[must_use]
    pub fn plan_modifier(mut self, m: Arc<dyn PlanModifier>) -> Self {
        self.plan_modifiers.push(m);
        self
    }
    /// Values for which `f(new, prior)` holds mean the same: the prior form is kept.
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

    /// The type of its value.
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
