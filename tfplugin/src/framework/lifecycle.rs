//! The protocol-agnostic core of Terraform's "resource instance change lifecycle".
//!
//! `plan` turns Terraform's proposed new state into a plan the rules allow (defaults, computed
//! values unknown when anything changes, modifiers, write-only values dropped); `check_plan` and
//! `check_applied` verify what a resource returned before Terraform sees it, so a provider bug
//! surfaces as an error naming the attribute instead of "Provider produced inconsistent result".

use std::collections::BTreeMap;

use super::planmod::{AttrPlan, AttrPlanResult};
use super::schema::{AttrKind, Attribute, Block, Nesting};
use super::validate;
use crate::diag::{Diagnostic, Diagnostics};
use crate::value::{AttributePath, Value};

static NULL: Value = Value::Null;

/// Run every attribute's validators over a configuration (unknown and null values skipped).
pub fn validate_config(block: &Block, config: &Value, diags: &mut Diagnostics) {
    walk_config(block, &AttributePath::root(), config, &mut |a, path, v| {
        validate::run(&a.validators, path, v, diags);
        if a.deprecation.is_some() && !v.is_null() {
            diags.warning_at(
                path.clone(),
                format!("{path} is deprecated"),
                a.deprecation.clone().unwrap_or_default(),
            );
        }
    });
}

/// Refuse values for write-only attributes when Terraform cannot keep them out of state:
/// write-only attributes need Terraform 1.11, and older versions would store them.
pub fn refuse_write_only(block: &Block, config: &Value, diags: &mut Diagnostics) {
    for a in block.attributes.iter().filter(|a| a.write_only) {
        if !config.attr(&a.name).is_null() {
            diags.error_at(
                AttributePath::attr(&a.name),
                "Write-only attribute not supported by this Terraform",
                format!("{} is write-only: it is never stored in state, which needs Terraform 1.11 or later. Upgrade Terraform, or leave it unset.", a.name),
            );
        }
    }
}

/// Visit each attribute value of `config` with its schema, descending into nested blocks and
/// nested attributes (sets included: validation needs no matching across values).
fn walk_config(
    block: &Block,
    path: &AttributePath,
    config: &Value,
    f: &mut dyn FnMut(&Attribute, &AttributePath, &Value),
) {
    for a in &block.attributes {
        let p = path.push_attr(&a.name);
        let v = config.attr(&a.name);
        f(a, &p, v);
        if let AttrKind::Nested {
            nesting,
            attributes,
        } = &a.kind
        {
            let inner = Block {
                attributes: attributes.clone(),
                ..Block::default()
            };
            for_each_nested(*nesting, &p, v, |ep, ev| walk_config(&inner, &ep, ev, f));
        }
    }
    for b in &block.blocks {
        let p = path.push_attr(&b.name);
        for_each_nested(b.nesting, &p, config.attr(&b.name), |ep, ev| {
            walk_config(&b.block, &ep, ev, f)
        });
    }
}

fn for_each_nested(
    nesting: Nesting,
    path: &AttributePath,
    v: &Value,
    mut f: impl FnMut(AttributePath, &Value),
) {
    match (nesting, v) {
        (Nesting::Single | Nesting::Group, Value::Object(_)) => f(path.clone(), v),
        (_, Value::List(items) | Value::Set(items)) => {
            for (i, item) in items.iter().enumerate() {
                f(path.push_index(i), item);
            }
        }
        (Nesting::Map, Value::Map(m)) => {
            for (k, item) in m {
                f(path.push_key(k), item);
            }
        }
        _ => {}
    }
}

/// Null every write-only attribute (they never reach plan or state).
pub fn strip_write_only(block: &Block, v: &mut Value) {
    let Value::Object(m) = v else { return };
    for a in &block.attributes {
        let Some(av) = m.get_mut(&a.name) else {
            continue;
        };
        if a.write_only {
            *av = Value::Null;
        } else if let AttrKind::Nested { attributes, .. } = &a.kind {
            let inner = Block {
                attributes: attributes.clone(),
                ..Block::default()
            };
            nested_values_mut(av, |ev| strip_write_only(&inner, ev));
        }
    }
    for b in &block.blocks {
        if let Some(bv) = m.get_mut(&b.name) {
            nested_values_mut(bv, |ev| strip_write_only(&b.block, ev));
        }
    }
}

fn nested_values_mut(v: &mut Value, mut f: impl FnMut(&mut Value)) {
    match v {
        Value::Object(_) => f(v),
        Value::List(items) | Value::Set(items) => items.iter_mut().for_each(f),
        Value::Map(m) => m.values_mut().for_each(f),
        _ => {}
    }
}

/// The framework's plan, before the resource's own `modify_plan`.
pub struct FrameworkPlan {
    /// The planned state.
    pub planned: Value,
    /// Attributes whose plan modifiers ask for replacement.
    pub requires_replace: Vec<AttributePath>,
    /// What the plan modifiers said.
    pub diags: Diagnostics,
}

/// Plan Terraform's `proposed` new state: write-only values dropped, defaults applied,
/// semantically equal values kept in their prior form, computed values the configuration
/// leaves null unknown when anything changes, then the attributes' plan modifiers.
pub fn plan(block: &Block, config: &Value, prior: &Value, proposed: &Value) -> FrameworkPlan {
    let mut out = FrameworkPlan {
        planned: proposed.clone(),
        requires_replace: Vec::new(),
        diags: Diagnostics::new(),
    };
    if proposed.is_null() {
        return out; // destroy
    }
    strip_write_only(block, &mut out.planned);
    apply_defaults(block, config, &mut out.planned);
    keep_equivalent(block, prior, &mut out.planned);
    // A create, or an update with a real change: computed values the user did not set may
    // change too, so they become unknown (modifiers such as UseStateForUnknown may keep them).
    let changing = prior.is_null() || !out.planned.equals(prior);
    if changing && !prior.is_null() {
        // Names only, never values: values may be secrets.
        let changed: Vec<String> = prior
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| !out.planned.attr(k).equals(v))
            .map(|(k, _)| k.clone())
            .collect();
        tracing::debug!(?changed, "update planned");
    }
    if changing {
        mark_computed_unknown(block, config, &mut out.planned);
    }
    run_modifiers(
        block,
        &AttributePath::root(),
        config,
        prior,
        prior,
        &mut out,
    );
    out
}

/// Where `target` (a plan, or a fresh read) means the same as `prior`, keep `prior`'s form.
pub fn keep_equivalent(block: &Block, prior: &Value, target: &mut Value) {
    let Value::Object(m) = target else { return };
    for a in &block.attributes {
        let (Some(eq), Some(t)) = (&a.semantic_equal, m.get_mut(&a.name)) else {
            continue;
        };
        let p = prior.attr(&a.name);
        if !p.is_null() && !t.is_null() && t.is_wholly_known() && !t.equals(p) && (eq.0)(t, p) {
            *t = p.clone();
        }
    }
    for b in &block.blocks {
        let Some(bv) = m.get_mut(&b.name) else {
            continue;
        };
        match (b.nesting, bv) {
            (Nesting::Single | Nesting::Group, bv @ Value::Object(_)) => {
                keep_equivalent(&b.block, prior.attr(&b.name), bv)
            }
            (Nesting::List, Value::List(items)) => {
                let pr = prior.attr(&b.name).as_elements().unwrap_or(&[]);
                for (i, item) in items.iter_mut().enumerate() {
                    keep_equivalent(&b.block, pr.get(i).unwrap_or(&NULL), item);
                }
            }
            (Nesting::Map, Value::Map(items)) => {
                for (k, item) in items.iter_mut() {
                    let p = prior
                        .attr(&b.name)
                        .as_map()
                        .and_then(|m| m.get(k))
                        .unwrap_or(&NULL);
                    keep_equivalent(&b.block, p, item);
                }
            }
            _ => {}
        }
    }
}

fn apply_defaults(block: &Block, config: &Value, planned: &mut Value) {
    let Value::Object(m) = planned else { return };
    for a in &block.attributes {
        let c = config.attr(&a.name);
        if let (Some(d), true) = (&a.default, c.is_null()) {
            m.insert(a.name.clone(), d.clone());
        }
    }
    for b in &block.blocks {
        if let (Nesting::Single | Nesting::Group, Some(bv)) = (b.nesting, m.get_mut(&b.name)) {
            apply_defaults(&b.block, config.attr(&b.name), bv);
        } else if let (Nesting::List, Some(Value::List(items))) = (b.nesting, m.get_mut(&b.name)) {
            let cfg = config.attr(&b.name).as_elements().unwrap_or(&[]);
            for (i, item) in items.iter_mut().enumerate() {
                apply_defaults(&b.block, cfg.get(i).unwrap_or(&NULL), item);
            }
        }
    }
}

fn mark_computed_unknown(block: &Block, config: &Value, planned: &mut Value) {
    let Value::Object(m) = planned else { return };
    for a in &block.attributes {
        let c = config.attr(&a.name);
        if a.computed && c.is_null() && a.default.is_none() {
            m.insert(a.name.clone(), Value::Unknown);
        }
    }
    for b in &block.blocks {
        let Some(bv) = m.get_mut(&b.name) else {
            continue;
        };
        match (b.nesting, bv) {
            (Nesting::Single | Nesting::Group, bv @ Value::Object(_)) => {
                mark_computed_unknown(&b.block, config.attr(&b.name), bv);
            }
            (Nesting::List, Value::List(items)) => {
                let cfg = config.attr(&b.name).as_elements().unwrap_or(&[]);
                for (i, item) in items.iter_mut().enumerate() {
                    mark_computed_unknown(&b.block, cfg.get(i).unwrap_or(&NULL), item);
                }
            }
            (Nesting::Map, Value::Map(items)) => {
                let cfg = config.attr(&b.name).as_map().cloned().unwrap_or_default();
                for (k, item) in items.iter_mut() {
                    mark_computed_unknown(&b.block, cfg.get(k).unwrap_or(&NULL), item);
                }
            }
            _ => {}
        }
    }
}

fn run_modifiers(
    block: &Block,
    path: &AttributePath,
    config: &Value,
    state: &Value,
    resource_state: &Value,
    out: &mut FrameworkPlan,
) {
    for a in &block.attributes {
        if a.plan_modifiers.is_empty() {
            continue;
        }
        let p = path.push_attr(&a.name);
        let Some(current) = out.planned.at(&p).cloned() else {
            continue;
        };
        let req = AttrPlan {
            path: &p,
            config: config.attr(&a.name),
            state: state.attr(&a.name),
            resource_state,
        };
        let mut resp = AttrPlanResult {
            plan: current,
            requires_replace: false,
            diags: Diagnostics::new(),
        };
        for m in &a.plan_modifiers {
            m.modify(&req, &mut resp);
        }
        if resp.requires_replace {
            out.requires_replace.push(p.clone());
        }
        out.diags.extend(resp.diags);
        if let Some(slot) = out.planned.at_mut(&p) {
            *slot = resp.plan;
        }
    }
    for b in &block.blocks {
        let p = path.push_attr(&b.name);
        match b.nesting {
            Nesting::Single | Nesting::Group => {
                if matches!(out.planned.at(&p), Some(Value::Object(_))) {
                    run_modifiers(
                        &b.block,
                        &p,
                        config.attr(&b.name),
                        state.attr(&b.name),
                        resource_state,
                        out,
                    );
                }
            }
            Nesting::List => {
                let n = out
                    .planned
                    .at(&p)
                    .and_then(Value::as_elements)
                    .map_or(0, <[Value]>::len);
                let cfg = config.attr(&b.name).as_elements().unwrap_or(&[]);
                let st = state.attr(&b.name).as_elements().unwrap_or(&[]);
                for i in 0..n {
                    let (c, s) = (cfg.get(i).unwrap_or(&NULL), st.get(i).unwrap_or(&NULL));
                    run_modifiers(&b.block, &p.push_index(i), c, s, resource_state, out);
                }
            }
            Nesting::Map => {
                let keys: Vec<String> = out
                    .planned
                    .at(&p)
                    .and_then(Value::as_map)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                for k in keys {
                    let c = config
                        .attr(&b.name)
                        .as_map()
                        .and_then(|m| m.get(&k))
                        .unwrap_or(&NULL);
                    let s = state
                        .attr(&b.name)
                        .as_map()
                        .and_then(|m| m.get(&k))
                        .unwrap_or(&NULL);
                    run_modifiers(&b.block, &p.push_key(&k), c, s, resource_state, out);
                }
            }
            // Set elements have no stable identity between config, plan and state.
            Nesting::Set => {}
        }
    }
}

fn bug(path: &AttributePath, what: String) -> Diagnostic {
    Diagnostic::error(
        "Provider returned an invalid value",
        format!(
            "{what}. This is a bug in the provider, not in your configuration; please report it."
        ),
    )
    .at(path.clone())
}

/// The plan rules: a non-computed attribute plans exactly its configuration (or, for a
/// normalised equivalent, the prior value); null config of a non-computed attribute stays
/// null; unknowns only where the config is unknown or the attribute is computed;
/// write-only attributes are null.
pub fn check_plan(
    block: &Block,
    path: &AttributePath,
    config: &Value,
    prior: &Value,
    planned: &Value,
    diags: &mut Diagnostics,
) {
    for a in &block.attributes {
        let p = path.push_attr(&a.name);
        let (c, s, v) = (
            config.attr(&a.name),
            prior.attr(&a.name),
            planned.attr(&a.name),
        );
        if a.write_only {
            if !v.is_null() {
                diags.push(bug(
                    &p,
                    format!("write-only attribute {p} was planned with a value"),
                ));
            }
            continue;
        }
        if a.computed && c.is_null() {
            continue; // the provider decides
        }
        // The configuration's value, or the prior value when the provider judged them equal.
        if v.equals(c) || (!c.is_null() && c.is_wholly_known() && v.equals(s)) {
            continue;
        }
        // Nested attributes may hold computed parts: recurse instead of comparing whole.
        match (&a.kind, c, v) {
            (
                AttrKind::Nested {
                    nesting: Nesting::Single,
                    attributes,
                },
                Value::Object(_),
                Value::Object(_),
            ) => {
                let inner = Block {
                    attributes: attributes.clone(),
                    ..Block::default()
                };
                check_plan(&inner, &p, c, s, v, diags);
            }
            _ if nested_has_computed(a) => {}
            _ => diags.push(bug(
                &p,
                format!(
                    "planned {} for {p} but the configuration says {}",
                    show(v),
                    show(c)
                ),
            )),
        }
    }
    for b in &block.blocks {
        let p = path.push_attr(&b.name);
        let (c, s, v) = (
            config.attr(&b.name),
            prior.attr(&b.name),
            planned.attr(&b.name),
        );
        match (b.nesting, c, v) {
            (Nesting::Single | Nesting::Group, Value::Object(_), Value::Object(_)) => {
                check_plan(&b.block, &p, c, s, v, diags)
            }
            (Nesting::List, Value::List(ci), Value::List(vi)) => {
                if ci.len() != vi.len() {
                    diags.push(bug(
                        &p,
                        format!(
                            "planned {} {p} blocks, configuration has {}",
                            vi.len(),
                            ci.len()
                        ),
                    ));
                    continue;
                }
                let si = s.as_elements().unwrap_or(&[]);
                for (i, (cv, pv)) in ci.iter().zip(vi).enumerate() {
                    check_plan(
                        &b.block,
                        &p.push_index(i),
                        cv,
                        si.get(i).unwrap_or(&NULL),
                        pv,
                        diags,
                    );
                }
            }
            (Nesting::Map, Value::Map(cm), Value::Map(vm)) => {
                if cm.keys().ne(vm.keys()) {
                    diags.push(bug(
                        &p,
                        format!("planned {p} keys differ from the configuration"),
                    ));
                    continue;
                }
                let sm = s.as_map().cloned().unwrap_or_default();
                for (k, cv) in cm {
                    check_plan(
                        &b.block,
                        &p.push_key(k),
                        cv,
                        sm.get(k).unwrap_or(&NULL),
                        &vm[k],
                        diags,
                    );
                }
            }
            (_, Value::Null, v) if !v.is_null() && b.nesting != Nesting::Group => {
                diags.push(bug(
                    &p,
                    format!("planned a {p} block the configuration does not have"),
                ));
            }
            _ => {}
        }
    }
}

fn nested_has_computed(a: &Attribute) -> bool {
    match &a.kind {
        AttrKind::Nested { attributes, .. } => attributes
            .iter()
            .any(|x| x.computed || nested_has_computed(x)),
        AttrKind::Primitive(_) => false,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Unknown => "(known after apply)".into(),
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_decimal(),
        Value::Bool(b) => b.to_string(),
        _ => "a different value".into(),
    }
}

/// The apply rule: every value known in the plan comes back unchanged, every unknown becomes
/// known. Returns the first path that breaks it.
pub fn check_applied(planned: &Value, new: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    match (planned, new) {
        (_, Value::Unknown) => {
            diags.push(bug(path, format!("{path} is still unknown after apply")))
        }
        (Value::Unknown, n) if !n.is_wholly_known() => {
            diags.push(bug(
                path,
                format!("{path} is still partly unknown after apply"),
            ));
        }
        (Value::Unknown, _) => {}
        (Value::Object(pm), Value::Object(nm)) => {
            for (k, pv) in pm {
                check_applied(pv, nm.get(k).unwrap_or(&NULL), &path.push_attr(k), diags);
            }
        }
        (Value::Map(pm), Value::Map(nm)) if pm.len() == nm.len() => {
            for (k, pv) in pm {
                match nm.get(k) {
                    Some(nv) => check_applied(pv, nv, &path.push_key(k), diags),
                    None => diags.push(bug(path, format!("{path} lost key {k:?} during apply"))),
                }
            }
        }
        (Value::List(pl), Value::List(nl)) | (Value::Tuple(pl), Value::Tuple(nl))
            if pl.len() == nl.len() =>
        {
            for (i, (pv, nv)) in pl.iter().zip(nl).enumerate() {
                check_applied(pv, nv, &path.push_index(i), diags);
            }
        }
        // Sets with unknown parts cannot be matched element by element.
        (Value::Set(_), Value::Set(_)) if !planned.is_wholly_known() && !new.is_wholly_known() => {
            diags.push(bug(
                path,
                format!("{path} is still partly unknown after apply"),
            ));
        }
        (Value::Set(_), Value::Set(_)) if !planned.is_wholly_known() => {}
        (p, n) if !p.equals(n) => {
            diags.push(bug(
                path,
                format!(
                    "{path} was planned as {} but apply returned {}",
                    show(p),
                    show(n)
                ),
            ));
        }
        _ => {}
    }
}

/// Objects in a Value decoded by the codec are always complete; values built by resource
/// code may omit null attributes or use null for "no blocks". Bring them to the one shape
/// Terraform uses, so comparisons and encoding agree with it.
pub fn complete(block: &Block, v: &mut Value) {
    let Value::Object(m) = v else { return };
    for a in &block.attributes {
        m.entry(a.name.clone()).or_insert(Value::Null);
    }
    for b in &block.blocks {
        let e = m.entry(b.name.clone()).or_insert(Value::Null);
        // Terraform never has null for block collections: no blocks is an empty one.
        if e.is_null() {
            match b.nesting {
                Nesting::List => *e = Value::List(Vec::new()),
                Nesting::Set => *e = Value::Set(Vec::new()),
                Nesting::Map => *e = Value::Map(BTreeMap::new()),
                Nesting::Group => *e = Value::Object(BTreeMap::new()),
                Nesting::Single => {}
            }
        }
        nested_values_mut(e, |ev| complete(&b.block, ev));
    }
}

/// Replace every unknown with null: Terraform refuses unknowns in a new state, even one
/// returned with errors.
pub fn null_unknowns(v: &mut Value) {
    match v {
        Value::Unknown => *v = Value::Null,
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            items.iter_mut().for_each(null_unknowns)
        }
        Value::Map(m) | Value::Object(m) => m.values_mut().for_each(null_unknowns),
        Value::Dynamic(_, inner) => null_unknowns(inner),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
