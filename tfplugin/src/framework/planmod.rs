//! Attribute plan modifiers: adjust an attribute's planned value or ask for replacement.
//! They run after the framework marked computed values unknown and applied defaults.

use std::fmt;
use std::sync::Arc;

use crate::diag::Diagnostics;
use crate::value::{AttributePath, Value};

/// What a modifier sees of one attribute. `state` is null on create.
pub struct AttrPlan<'a> {
    /// Where the attribute is.
    pub path: &'a AttributePath,
    /// Its configuration.
    pub config: &'a Value,
    /// Its prior state.
    pub state: &'a Value,
    /// The resource's whole prior state, for modifiers that look at siblings.
    pub resource_state: &'a Value,
}

/// What a modifier may change: the attribute's planned value, whether a change replaces
/// the resource, and diagnostics.
pub struct AttrPlanResult {
    /// The planned value, as the framework or earlier modifiers left it.
    pub plan: Value,
    /// Set to replace the resource instead of updating it.
    pub requires_replace: bool,
    /// What the modifier has to say.
    pub diags: Diagnostics,
}

/// Adjusts one attribute's plan; attached with [`Attribute::plan_modifier`](super::Attribute::plan_modifier).
pub trait PlanModifier: fmt::Debug + Send + Sync {
    /// A phrase for the docs ("keeps its value across updates").
    fn description(&self) -> String;
    /// Adjust `resp` for the attribute `req` describes.
    fn modify(&self, req: &AttrPlan<'_>, resp: &mut AttrPlanResult);
}

/// Changing the attribute destroys and recreates the resource.
#[derive(Debug)]
pub struct RequiresReplace;

impl PlanModifier for RequiresReplace {
    fn description(&self) -> String {
        "changing it replaces the resource".into()
    }
    fn modify(&self, req: &AttrPlan<'_>, resp: &mut AttrPlanResult) {
        if !req.resource_state.is_null() && !resp.plan.equals(req.state) {
            resp.requires_replace = true;
        }
    }
}

type ReplaceIfFn = dyn Fn(&Value, &Value) -> bool + Send + Sync;

/// Replacement only when `f(state, plan)` says so (e.g. a disk shrink, a node move without migration).
pub struct RequiresReplaceIf {
    description: String,
    f: Box<ReplaceIfFn>,
}

impl fmt::Debug for RequiresReplaceIf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequiresReplaceIf({})", self.description)
    }
}

impl PlanModifier for RequiresReplaceIf {
    fn description(&self) -> String {
        self.description.clone()
    }
    fn modify(&self, req: &AttrPlan<'_>, resp: &mut AttrPlanResult) {
        if !req.resource_state.is_null()
            && !resp.plan.equals(req.state)
            && (self.f)(req.state, &resp.plan)
        {
            resp.requires_replace = true;
        }
    }
}

/// Keep the prior value instead of "(known after apply)" when nothing will change it.
#[derive(Debug)]
pub struct UseStateForUnknown;

impl PlanModifier for UseStateForUnknown {
    fn description(&self) -> String {
        "keeps its value across updates".into()
    }
    fn modify(&self, req: &AttrPlan<'_>, resp: &mut AttrPlanResult) {
        if resp.plan.is_unknown() && req.config.is_null() && !req.state.is_null() {
            resp.plan = req.state.clone();
        }
    }
}

/// [`RequiresReplace`]: any change replaces the resource.
pub fn requires_replace() -> Arc<dyn PlanModifier> {
    Arc::new(RequiresReplace)
}

/// [`RequiresReplaceIf`]: a change replaces the resource when `f(state, plan)` is true.
pub fn requires_replace_if(
    description: impl Into<String>,
    f: impl Fn(&Value, &Value) -> bool + Send + Sync + 'static,
) -> Arc<dyn PlanModifier> {
    Arc::new(RequiresReplaceIf {
        description: description.into(),
        f: Box::new(f),
    })
}

/// [`UseStateForUnknown`]: keep the prior value rather than "(known after apply)".
pub fn use_state_for_unknown() -> Arc<dyn PlanModifier> {
    Arc::new(UseStateForUnknown)
}
