//! Unit tests of the lifecycle rules: one per plan and apply rule.

use super::*;
use crate::framework::planmod::{requires_replace, use_state_for_unknown};
use crate::framework::schema::{Attribute, NestedBlock};

fn block() -> Block {
    Block::new()
        .attr(
            Attribute::string("id")
                .computed()
                .plan_modifier(use_state_for_unknown())
                .description("d"),
        )
        .attr(
            Attribute::string("name")
                .required()
                .plan_modifier(requires_replace())
                .description("d"),
        )
        .attr(Attribute::number("size").optional().description("d"))
        .attr(Attribute::string("mode").default("fast").description("d"))
        .attr(Attribute::number("revision").computed().description("d"))
        .attr(
            Attribute::string("pw")
                .optional()
                .write_only()
                .description("d"),
        )
        .attr(
            Attribute::string("label")
                .optional()
                .semantic_equal(|a, b| {
                    a.as_str().map(str::to_lowercase) == b.as_str().map(str::to_lowercase)
                })
                .description("d"),
        )
        .block(NestedBlock::new(
            "port",
            Nesting::List,
            Block::new().attr(Attribute::number("n").required().description("d")),
        ))
}

fn obj(pairs: &[(&str, Value)]) -> Value {
    let mut v = Value::object(pairs.iter().map(|(k, v)| (*k, v.clone())));
    complete(&block(), &mut v);
    v
}

fn errors_at(d: &Diagnostics) -> Vec<String> {
    d.iter()
        .filter_map(|d| d.path.as_ref().map(ToString::to_string))
        .collect()
}

#[test]
fn create_marks_computed_unknown_applies_defaults_drops_write_only() {
    let config = obj(&[("name", "a".into()), ("pw", "secret".into())]);
    let p = plan(&block(), &config, &Value::Null, &config);
    assert_eq!(p.planned.attr("id"), &Value::Unknown);
    assert_eq!(p.planned.attr("revision"), &Value::Unknown);
    assert_eq!(p.planned.attr("mode"), &Value::from("fast"));
    assert_eq!(p.planned.attr("pw"), &Value::Null);
    assert!(p.requires_replace.is_empty(), "no replace on create");
    let mut d = Diagnostics::new();
    check_plan(
        &block(),
        &AttributePath::root(),
        &config,
        &Value::Null,
        &p.planned,
        &mut d,
    );
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn no_change_keeps_computed_values_known() {
    let prior = obj(&[
        ("id", "x".into()),
        ("name", "a".into()),
        ("mode", "fast".into()),
        ("revision", Value::int(3)),
    ]);
    let config = obj(&[("name", "a".into())]);
    // Terraform proposes prior values for computed attributes the config leaves null.
    let proposed = prior.clone();
    let p = plan(&block(), &config, &prior, &proposed);
    assert!(p.planned.equals(&prior), "{:?}", p.planned);
}

#[test]
fn update_keeps_id_by_modifier_and_unknowns_the_rest() {
    let prior = obj(&[
        ("id", "x".into()),
        ("name", "a".into()),
        ("mode", "fast".into()),
        ("revision", Value::int(3)),
    ]);
    let config = obj(&[("name", "a".into()), ("size", Value::int(2))]);
    let mut proposed = prior.clone();
    proposed.set_attr("size", Value::int(2));
    let p = plan(&block(), &config, &prior, &proposed);
    assert_eq!(
        p.planned.attr("id"),
        &Value::from("x"),
        "UseStateForUnknown"
    );
    assert_eq!(p.planned.attr("revision"), &Value::Unknown);
    assert!(p.requires_replace.is_empty());
    let mut renamed = proposed.clone();
    renamed.set_attr("name", "b".into());
    let p = plan(
        &block(),
        &obj(&[("name", "b".into()), ("size", Value::int(2))]),
        &prior,
        &renamed,
    );
    assert_eq!(p.requires_replace, vec![AttributePath::attr("name")]);
}

#[test]
fn semantically_equal_values_keep_the_prior_form_and_plan_nothing() {
    let prior = obj(&[
        ("id", "x".into()),
        ("name", "a".into()),
        ("mode", "fast".into()),
        ("label", "Hello".into()),
        ("revision", Value::int(1)),
    ]);
    let config = obj(&[("name", "a".into()), ("label", "HELLO".into())]);
    let mut proposed = prior.clone();
    proposed.set_attr("label", "HELLO".into());
    let p = plan(&block(), &config, &prior, &proposed);
    assert!(p.planned.equals(&prior));
    let mut d = Diagnostics::new();
    check_plan(
        &block(),
        &AttributePath::root(),
        &config,
        &prior,
        &p.planned,
        &mut d,
    );
    assert!(
        d.is_empty(),
        "prior value is allowed for a configured attribute: {d:?}"
    );
}

#[test]
fn each_plan_rule_violation_is_named() {
    let config = obj(&[
        ("name", "a".into()),
        ("pw", "s".into()),
        ("port", Value::List(vec![obj_port(1)])),
    ]);
    let cases: Vec<(&str, Value)> = vec![
        (
            "name",
            obj(&[
                ("name", "other".into()),
                ("port", Value::List(vec![obj_port(1)])),
            ]),
        ),
        (
            "size",
            obj(&[
                ("name", "a".into()),
                ("size", Value::int(1)),
                ("port", Value::List(vec![obj_port(1)])),
            ]),
        ),
        (
            "pw",
            obj(&[
                ("name", "a".into()),
                ("pw", "s".into()),
                ("port", Value::List(vec![obj_port(1)])),
            ]),
        ),
        (
            "port",
            obj(&[("name", "a".into()), ("port", Value::List(vec![]))]),
        ),
        (
            "port[0].n",
            obj(&[
                ("name", "a".into()),
                ("port", Value::List(vec![obj_port(2)])),
            ]),
        ),
    ];
    for (path, planned) in cases {
        let mut d = Diagnostics::new();
        check_plan(
            &block(),
            &AttributePath::root(),
            &config,
            &Value::Null,
            &planned,
            &mut d,
        );
        assert_eq!(errors_at(&d), vec![path.to_owned()], "{d:?}");
        assert!(d.iter().all(|x| x.detail.contains("bug in the provider")));
    }
}

fn obj_port(n: i64) -> Value {
    Value::object([("n", Value::int(n))])
}

#[test]
fn each_apply_rule_violation_is_named() {
    let planned = obj(&[
        ("id", Value::Unknown),
        ("name", "a".into()),
        ("mode", "fast".into()),
        ("revision", Value::int(1)),
    ]);
    let good = obj(&[
        ("id", "x".into()),
        ("name", "a".into()),
        ("mode", "fast".into()),
        ("revision", Value::int(1)),
    ]);
    let mut d = Diagnostics::new();
    check_applied(&planned, &good, &AttributePath::root(), &mut d);
    assert!(d.is_empty(), "{d:?}");
    let cases = [
        (
            "id",
            obj(&[
                ("name", "a".into()),
                ("mode", "fast".into()),
                ("revision", Value::int(1)),
                ("id", Value::Unknown),
            ]),
        ),
        (
            "revision",
            obj(&[
                ("id", "x".into()),
                ("name", "a".into()),
                ("mode", "fast".into()),
                ("revision", Value::int(2)),
            ]),
        ),
        (
            "name",
            obj(&[
                ("id", "x".into()),
                ("name", "b".into()),
                ("mode", "fast".into()),
                ("revision", Value::int(1)),
            ]),
        ),
    ];
    for (path, new) in cases {
        let mut d = Diagnostics::new();
        check_applied(&planned, &new, &AttributePath::root(), &mut d);
        assert_eq!(errors_at(&d), vec![path.to_owned()], "{d:?}");
    }
}

#[test]
fn complete_gives_terraforms_shapes() {
    let mut v = Value::object([("name", Value::from("a"))]);
    complete(&block(), &mut v);
    assert_eq!(
        v.attr("port"),
        &Value::List(vec![]),
        "no blocks is an empty list"
    );
    assert_eq!(v.attr("size"), &Value::Null);
}
