//! Field ownership (`metadata.managedFields`) and server-side apply: every write records which
//! manager owns which fields (FieldsV1); an apply that changes a field another manager owns is a
//! 409 conflict unless forced; fields a manager stops applying are removed if nobody else owns
//! them. Lists are atomic (owned as a whole), as for lists without merge keys.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A field path (object keys from the root).
pub type Path = Vec<String>;

/// Server-owned metadata no manager owns.
const SERVER_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "managedFields",
    "selfLink",
];

/// The leaf fields of an object (scalars, lists and empty objects), without identity and
/// server-owned fields.
pub fn leaves(obj: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    if path.is_empty() && (k == "apiVersion" || k == "kind" || k == "status") {
                        continue;
                    }
                    if path.len() == 1 && path[0] == "metadata" && SERVER_META.contains(&k.as_str())
                    {
                        continue;
                    }
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(obj, &mut Vec::new(), &mut out);
    out
}

fn get<'a>(v: &'a Value, p: &Path) -> Option<&'a Value> {
    p.iter().try_fold(v, |v, k| v.get(k))
}

fn set(v: &mut Value, p: &Path, value: Value) {
    let mut cur = v;
    for k in &p[..p.len() - 1] {
        if !cur.get(k).is_some_and(Value::is_object) {
            cur[k.as_str()] = json!({});
        }
        cur = cur.get_mut(k).expect("object");
    }
    cur[p[p.len() - 1].as_str()] = value;
}

fn remove(v: &mut Value, p: &Path) {
    let mut cur = &mut *v;
    for k in &p[..p.len() - 1] {
        match cur.get_mut(k) {
            Some(c) => cur = c,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(&p[p.len() - 1]);
    }
    // Drop maps left empty by the removal (not the metadata map).
    for depth in (1..p.len()).rev() {
        let parent = &p[..depth];
        if parent.len() == 1 && parent[0] == "metadata" {
            break;
        }
        let empty =
            get(v, &parent.to_vec()).is_some_and(|x| x.as_object().is_some_and(Map::is_empty));
        if !empty {
            break;
        }
        let mut cur = &mut *v;
        for k in &parent[..parent.len() - 1] {
            cur = cur.get_mut(k).expect("exists");
        }
        if let Some(m) = cur.as_object_mut() {
            m.remove(&parent[parent.len() - 1]);
        }
    }
}

/// FieldsV1 of a set of paths: `{"f:data": {"f:key": {}}}`.
pub fn fields_v1(paths: &BTreeSet<Path>) -> Value {
    let mut root = json!({});
    for p in paths {
        let mut cur = &mut root;
        for k in p {
            let key = format!("f:{k}");
            if cur.get(&key).is_none() {
                cur[key.as_str()] = json!({});
            }
            cur = cur.get_mut(&key).expect("inserted");
        }
    }
    root
}

/// The paths of a FieldsV1 tree.
pub fn paths_of(fields: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let Some(m) = v.as_object() else { return };
        let children: Vec<(&String, &Value)> =
            m.iter().filter(|(k, _)| k.starts_with("f:")).collect();
        if children.is_empty() && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, c) in children {
            path.push(k[2..].to_string());
            walk(c, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(fields, &mut Vec::new(), &mut out);
    out
}

/// One managedFields entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    time: String,
    paths: BTreeSet<Path>,
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().to_string(),
                    operation: e["operation"].as_str().unwrap_or_default().to_string(),
                    time: e["time"].as_str().unwrap_or_default().to_string(),
                    paths: paths_of(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn store_entries(obj: &mut Value, list: Vec<Entry>) {
    let arr: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.paths.is_empty())
        .map(|e| {
            json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": "v1",
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(&e.paths),
            })
        })
        .collect();
    if arr.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(arr);
    }
}

/// A non-apply write (create, update, patch) by `manager`: it owns the fields whose value it
/// set or changed, taking them from everyone else.
pub fn track_update(old: Option<&Value>, new: &mut Value, manager: &str, now: &str) {
    let mut list = old.map(entries).unwrap_or_default();
    let changed: BTreeSet<Path> = leaves(new)
        .into_iter()
        .filter(|p| old.and_then(|o| get(o, p)) != get(new, p))
        .collect();
    let present = leaves(new);
    for e in &mut list {
        e.paths
            .retain(|p| present.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        match list
            .iter_mut()
            .find(|e| e.manager == manager && e.operation == "Update")
        {
            Some(e) => {
                e.paths.extend(changed);
                e.time = now.to_string();
            }
            None => list.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                time: now.into(),
                paths: changed,
            }),
        }
    }
    store_entries(new, list);
}

/// A conflict: (manager description, path as `.a.b`).
pub type Conflict = (String, String);

/// Server-side apply of `applied` by `manager` onto `live` (None: create). Returns the new
/// object, or the conflicts when not forced.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let mine = leaves(applied);
    let mut list = live.map(entries).unwrap_or_default();
    let mut conflicts = Vec::new();
    if let Some(l) = live {
        for e in &list {
            if e.manager == manager && e.operation == "Apply" {
                continue;
            }
            for p in e.paths.intersection(&mine) {
                if get(l, p) != get(applied, p) {
                    let who = if e.operation == "Update" {
                        format!("{:?} using v1", e.manager)
                    } else {
                        format!("{:?}", e.manager)
                    };
                    conflicts.push((who, format!(".{}", p.join("."))));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut out = live.cloned().unwrap_or_else(|| json!({}));
    // Forced: the other managers lose the contested fields.
    if force {
        let contested: BTreeSet<Path> = list
            .iter()
            .filter(|e| !(e.manager == manager && e.operation == "Apply"))
            .flat_map(|e| e.paths.intersection(&mine).cloned().collect::<Vec<_>>())
            .filter(|p| live.and_then(|l| get(l, p)) != get(applied, p))
            .collect();
        for e in &mut list {
            if !(e.manager == manager && e.operation == "Apply") {
                e.paths.retain(|p| !contested.contains(p));
            }
        }
    }
    // Fields this manager applied before and no longer does: removed unless someone else owns
    // them.
    let before: BTreeSet<Path> = list
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply")
        .flat_map(|e| e.paths.iter().cloned())
        .collect();
    for p in before.difference(&mine) {
        let others = list
            .iter()
            .any(|e| !(e.manager == manager && e.operation == "Apply") && e.paths.contains(p));
        if !others {
            remove(&mut out, p);
        }
    }
    for p in &mine {
        if let Some(v) = get(applied, p) {
            // An empty map in the applied config claims the map, it does not empty it.
            let keeps = v.as_object().is_some_and(Map::is_empty)
                && get(&out, p).is_some_and(Value::is_object);
            if !keeps {
                set(&mut out, p, v.clone());
            }
        }
    }
    for k in ["apiVersion", "kind"] {
        if let Some(v) = applied.get(k) {
            out[k] = v.clone();
        }
    }
    if let Some(n) = applied.pointer("/metadata/name") {
        out["metadata"]["name"] = n.clone();
    }
    // A repeated apply of the same fields keeps its time (no change, no new version).
    let time = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply" && e.paths == mine)
        .map_or_else(|| now.to_string(), |e| e.time.clone());
    list.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    list.push(Entry {
        manager: manager.into(),
        operation: "Apply".into(),
        time,
        paths: mine,
    });
    store_entries(&mut out, list);
    Ok(out)
}

/// Kubernetes' conflict message.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [(who, path)] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {who}: {path}");
    }
    let mut managers: Vec<&String> = conflicts.iter().map(|(w, _)| w).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for (_, p) in conflicts.iter().filter(|(w, _)| w == m) {
            lines.push(format!("- {p}"));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_and_conflicts() {
        let now = "2026-01-01T00:00:00Z";
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1", "y": "2"}});
        let made = apply(None, &a, "alice", false, now).expect("create");
        assert_eq!(made["metadata"]["name"], "c");
        let again = apply(Some(&made), &a, "alice", false, "2030-01-01T00:00:00Z").expect("again");
        assert_eq!(again, made, "a repeated apply changes nothing");
        assert_eq!(
            made["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:x": {}, "f:y": {}}})
        );
        // Same values from another manager: shared, no conflict.
        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1"}});
        let shared = apply(Some(&made), &b, "bob", false, now).expect("shared");
        // A different value: conflict, unless forced.
        let c = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"y": "3"}});
        let e = apply(Some(&shared), &c, "bob", false, now).expect_err("conflict");
        assert_eq!(
            conflict_message(&e),
            "Apply failed with 1 conflict: conflict with \"alice\": .data.y"
        );
        let forced = apply(Some(&shared), &c, "bob", true, now).expect("forced");
        assert_eq!(forced["data"], json!({"x": "1", "y": "3"}));
        // alice stops applying x and y: y is bob's and stays; x (bob dropped it) goes.
        let a2 =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        let after = apply(Some(&forced), &a2, "alice", false, now).expect("apply");
        assert_eq!(after["data"], json!({"y": "3"}));
        // An update takes ownership of what it changes.
        let mut upd = after.clone();
        upd["data"]["y"] = json!("4");
        track_update(Some(&after), &mut upd, "kubectl-edit", now);
        let e = apply(Some(&upd), &c, "bob", false, now).expect_err("kubectl-edit owns y");
        assert_eq!(
            conflict_message(&e),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.y"
        );
        assert_eq!(
            conflict_message(&[
                ("\"a\"".into(), ".data.p".into()),
                ("\"a\"".into(), ".data.q".into())
            ]),
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .data.p\n- .data.q"
        );
    }
}
