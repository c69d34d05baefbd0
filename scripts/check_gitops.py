#!/usr/bin/env python3
"""Checks the GitOps tree (gitops/argocd/) the way Argo CD, Helm and the API server would.

    .venv/bin/python scripts/check_gitops.py [--tree DIR] [--reference DIR]

Checks, each able to fail (scripts/test_check_gitops.py breaks a copy for every one):
  * every YAML and JSON file parses;
  * the root Application picks up exactly one application.yaml per component folder (and the
    AppProject), every Application is complete (project, sync policy, waves, sources that exist);
  * Applications and the AppProject validate against Argo CD's CRD schemas (install manifest);
  * Helm values validate against the chart's values.schema.json (merged with the chart's
    defaults, as Helm does) and name only keys the chart's values.yaml knows;
  * custom resources (TracingPolicy, ServiceMonitor, PodMonitor, PrometheusRule, cert-manager,
    Gateway API) validate against their CRDs; Cilium policies against their JSON schemas;
  * PrometheusRules pass `promtool check rules`, extra scrape configs `promtool check config`;
  * Grafana dashboards are valid JSON naming only datasources the monitoring stack provisions;
  * Talos machine-config patches use only fields of Talos's config schema.

Unknown fields are errors everywhere (the API server's strict field validation), so a typo
cannot hide. Checks that need the reference fixtures (../shared/reference, or
INFRAFLUX_REFERENCE) say "skipped: reference fixtures not present" outside CI and fail in CI
(CI set and not "false"/"0"); so do the promtool checks when promtool is missing.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parent.parent

# The chart each component pins (the versions), and where its values data lives in the
# reference folder.
CHARTS = {
    "cilium": ("https://helm.cilium.io", "1.20.0"),
    "tetragon": ("https://helm.cilium.io", "1.7.0"),
    "kube-prometheus-stack": ("https://prometheus-community.github.io/helm-charts", "88.5.3"),
    "cert-manager": ("https://charts.jetstack.io", "v1.21.1"),
    "external-dns": ("https://kubernetes-sigs.github.io/external-dns", "1.21.1"),
    "longhorn": ("https://charts.longhorn.io", "1.12.1"),
    "headlamp": ("https://kubernetes-sigs.github.io/headlamp", "0.45.0"),
}

# Keys a chart's templates read that its values.yaml documents only in a comment (checked to be
# there, commented, so this list cannot drift into arbitrary keys).
COMMENTED_KEYS = {
    "kube-prometheus-stack": {
        "kubeControllerManager.service.selector",
        "kubeScheduler.service.selector",
    },
}

# Applications that must not cascade-delete their resources (deleting the Application must not
# remove the cluster's network).
NO_FINALIZER = {"cilium"}

REQUIRED_SYNC_OPTIONS = {"CreateNamespace=true", "ServerSideApply=true"}
IN_CLUSTER = "https://kubernetes.default.svc"

# Built-in kinds the tree may hold besides custom resources (no CRD schema to check them with).
CORE_KINDS = {("v1", "ConfigMap"), ("v1", "Namespace"), ("v1", "Secret")}


# libyaml's loader: the reference CRDs are megabytes of YAML (pure-Python parsing takes ~20 s).
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_all(text: str) -> list:
    return [d for d in yaml.load_all(text, Loader=LOADER) if d is not None]


def load(text: str):
    return yaml.load(text, Loader=LOADER)


def in_ci() -> bool:
    v = os.environ.get("CI", "")
    return v not in ("", "false", "0")


class Skip(Exception):
    """A check that cannot run here (outside CI only)."""


def reference_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("INFRAFLUX_REFERENCE")
    return Path(env) if env else REPO.parent / "shared" / "reference"


def need(ref: Path, rel: str) -> Path:
    p = ref / rel
    if p.exists():
        return p
    if in_ci():
        raise SystemExit(
            f"reference fixture {p} is missing in CI: the ../shared checkout must sit beside the repository"
        )
    raise Skip(f"skipped: reference fixtures not present ({p})")


def promtool() -> str:
    p = shutil.which("promtool")
    if p:
        return p
    if in_ci():
        raise SystemExit("promtool is missing in CI: .ci/run installs Debian's prometheus package")
    raise Skip("skipped: promtool not installed (Debian package prometheus)")


# ---- loading ---------------------------------------------------------------------------------


class Tree:
    """The parsed gitops/ tree: documents per file, and parse errors."""

    def __init__(self, root: Path):
        self.root = root
        self.docs: dict[Path, list] = {}
        self.errors: list[str] = []
        for p in sorted(root.rglob("*")):
            if not p.is_file():
                continue
            rel = p.relative_to(root)
            try:
                if p.suffix in (".yaml", ".yml"):
                    self.docs[p] = load_all(p.read_text())
                elif p.suffix == ".json":
                    self.docs[p] = [json.loads(p.read_text())]
            except (yaml.YAMLError, json.JSONDecodeError) as e:
                self.errors.append(f"{rel}: does not parse: {e}")

    def rel(self, p: Path) -> str:
        return str(p.relative_to(self.root.parent))

    def one(self, p: Path):
        docs = self.docs.get(p) or []
        return docs[0] if len(docs) == 1 else None


def argocd_root(tree: Tree) -> Path:
    return tree.root / "argocd"


def glob_match(pattern: str, text: str) -> bool:
    """Argo CD's directory include/exclude glob (gobwas/glob without separators: `*` crosses
    `/`; `{a,b}` alternatives; `?`; `[...]`)."""
    return re.fullmatch(glob_regex(pattern), text, re.S) is not None


def glob_regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out += ".*"
        elif c == "?":
            out += "."
        elif c == "{":
            j = pattern.index("}", i)
            out += "(?:" + "|".join(glob_regex(a) for a in pattern[i + 1 : j].split(",")) + ")"
            i = j
        elif c == "[":
            j = pattern.index("]", i)
            body = pattern[i + 1 : j]
            out += "[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]"
            i = j
        else:
            out += re.escape(c)
        i += 1
    return out


# ---- Applications (no reference needed) ------------------------------------------------------


def root_application(tree: Tree):
    p = argocd_root(tree) / "bootstrap" / "root.yaml"
    doc = tree.one(p)
    if not isinstance(doc, dict) or doc.get("kind") != "Application":
        return None, [f"{tree.rel(p)}: must hold exactly one Application (the root app-of-apps)"]
    return doc, []


def discovered(tree: Tree, root: dict) -> list[Path]:
    """The files the root Application applies: Argo CD's directory walk of its path."""
    src = root.get("spec", {}).get("source", {})
    base = tree.root.parent / src.get("path", "")
    d = src.get("directory", {}) or {}
    files = []
    for p in sorted(base.rglob("*") if d.get("recurse") else base.glob("*")):
        if not p.is_file() or p.suffix not in (".yaml", ".yml", ".json"):
            continue
        rel = str(p.relative_to(base))
        if d.get("exclude") and glob_match(d["exclude"], rel):
            continue
        if d.get("include") and not glob_match(d["include"], rel):
            continue
        files.append(p)
    return files


def check_applications(tree: Tree) -> list[str]:
    errs: list[str] = []
    root, e = root_application(tree)
    if root is None:
        return e
    rs = root["spec"]
    for k, want in (("automated", None), ("retry", None)):
        if not (rs.get("syncPolicy") or {}).get(k):
            errs.append(f"root Application: syncPolicy.{k} is missing")
    git_repo, git_rev = rs["source"].get("repoURL"), rs["source"].get("targetRevision")
    apps_dir = tree.root.parent / rs["source"].get("path", "")
    files = discovered(tree, root)
    components = sorted(p for p in apps_dir.iterdir() if p.is_dir())
    picked = {p.parent for p in files if p.name == "application.yaml"}
    for c in components:
        if c not in picked:
            errs.append(f"{tree.rel(c)}: the root Application does not pick up {c.name}/application.yaml")
    projects: dict[str, dict] = {"default": {"spec": {"sourceRepos": ["*"]}}}
    apps: list[tuple[Path, dict]] = []
    for p in files:
        for doc in tree.docs.get(p, []):
            kind = doc.get("kind") if isinstance(doc, dict) else None
            if kind == "AppProject":
                projects[doc["metadata"]["name"]] = doc
            elif kind == "Application":
                apps.append((p, doc))
            else:
                errs.append(f"{tree.rel(p)}: the root Application would apply a {kind!r}, not an Application")
    for p, app in apps:
        errs += check_application(tree, p, app, projects, git_repo, git_rev)
    names = [a["metadata"]["name"] for _, a in apps]
    for n in {n for n in names if names.count(n) > 1}:
        errs.append(f"two Applications are named {n}")
    return errs


def check_application(tree: Tree, p: Path, app: dict, projects: dict, git_repo: str, git_rev: str) -> list[str]:
    where = tree.rel(p)
    errs = []
    meta, spec = app.get("metadata", {}), app.get("spec", {})
    name = meta.get("name", "?")
    if meta.get("namespace") != "argocd":
        errs.append(f"{where}: Applications live in namespace argocd")
    wave = (meta.get("annotations") or {}).get("argocd.argoproj.io/sync-wave")
    if wave is None or not re.fullmatch(r"-?\d+", str(wave)):
        errs.append(f"{where}: argocd.argoproj.io/sync-wave must be an integer string, not {wave!r}")
    fin = "resources-finalizer.argocd.argoproj.io" in (meta.get("finalizers") or [])
    if fin == (name in NO_FINALIZER):
        errs.append(f"{where}: the resources finalizer must be {'absent' if fin else 'present'}")
    project = projects.get(spec.get("project"))
    if project is None:
        errs.append(f"{where}: project {spec.get('project')!r} is not defined")
    if (spec.get("destination") or {}).get("server") != IN_CLUSTER:
        errs.append(f"{where}: destination.server must be {IN_CLUSTER}")
    sp = spec.get("syncPolicy") or {}
    auto = sp.get("automated") or {}
    if not (auto.get("prune") and auto.get("selfHeal")):
        errs.append(f"{where}: syncPolicy.automated needs prune and selfHeal")
    if not (sp.get("retry") or {}).get("backoff"):
        errs.append(f"{where}: syncPolicy.retry needs a backoff")
    missing = REQUIRED_SYNC_OPTIONS - set(sp.get("syncOptions") or [])
    if missing:
        errs.append(f"{where}: syncOptions lack {sorted(missing)}")
    sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
    refs = {s["ref"]: s for s in sources if s.get("ref")}
    allowed = (project or {}).get("spec", {}).get("sourceRepos", [])
    for s in sources:
        repo = s.get("repoURL")
        if "*" not in allowed and repo not in allowed:
            errs.append(f"{where}: {repo} is not among project {spec.get('project')}'s sourceRepos")
        if s.get("chart"):
            want = CHARTS.get(s["chart"])
            if want is None:
                errs.append(f"{where}: chart {s['chart']} has no pinned version in scripts/check_gitops.py")
            elif (repo, s.get("targetRevision")) != want:
                errs.append(f"{where}: chart {s['chart']} must come from {want[0]} at {want[1]}")
            for vf in (s.get("helm") or {}).get("valueFiles") or []:
                m = re.match(r"\$(\w+)/(.*)", vf)
                if not m or m.group(1) not in refs:
                    errs.append(f"{where}: value file {vf} does not name a ref source")
                elif not (tree.root.parent / m.group(2)).is_file():
                    errs.append(f"{where}: value file {m.group(2)} does not exist")
        else:
            if (repo, s.get("targetRevision")) != (git_repo, git_rev):
                errs.append(f"{where}: Git source {repo}@{s.get('targetRevision')} differs from the root's {git_repo}@{git_rev}")
            if s.get("path") and not (tree.root.parent / s["path"]).is_dir():
                errs.append(f"{where}: source path {s['path']} does not exist")
    return errs


def helm_sources(tree: Tree):
    """(application file, chart, version, [value files]) for every Helm source."""
    root, _ = root_application(tree)
    if root is None:
        return
    for p in discovered(tree, root):
        for app in tree.docs.get(p, []):
            if not isinstance(app, dict) or app.get("kind") != "Application":
                continue
            for s in app["spec"].get("sources") or [app["spec"].get("source") or {}]:
                if s.get("chart"):
                    files = [
                        tree.root.parent / re.sub(r"^\$\w+/", "", v)
                        for v in (s.get("helm") or {}).get("valueFiles") or []
                    ]
                    yield p, s["chart"], s.get("targetRevision"), files


def manifest_dirs(tree: Tree) -> list[Path]:
    root, _ = root_application(tree)
    if root is None:
        return []
    dirs = []
    for p in discovered(tree, root):
        for app in tree.docs.get(p, []):
            if isinstance(app, dict) and app.get("kind") == "Application":
                for s in app["spec"].get("sources") or [app["spec"].get("source") or {}]:
                    if s.get("path"):
                        dirs.append(tree.root.parent / s["path"])
    return dirs


def manifests(tree: Tree, d: Path) -> list[tuple[Path, dict]]:
    """The objects a directory source renders: plain files, or a kustomization's resources
    and generated ConfigMaps (the subset of Kustomize this tree uses)."""
    k = d / "kustomization.yaml"
    out = []
    if k.is_file():
        kust = tree.one(k) or {}
        for r in kust.get("resources") or []:
            out += [(d / r, doc) for doc in tree.docs.get(d / r, [])]
        labels = (kust.get("generatorOptions") or {}).get("labels") or {}
        for g in kust.get("configMapGenerator") or []:
            data = {Path(f).name: (d / f).read_text() for f in g.get("files") or [] if (d / f).is_file()}
            meta = {"name": g["name"], "labels": dict(labels)}
            if g.get("namespace"):
                meta["namespace"] = g["namespace"]
            out.append((k, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}))
        return out
    for p in sorted(d.rglob("*")):
        if p.suffix in (".yaml", ".yml", ".json"):
            out += [(p, doc) for doc in tree.docs.get(p, [])]
    return out


# ---- schemas ---------------------------------------------------------------------------------


def strict(schema):
    """An OpenAPI schema from a CRD made strict: objects with declared properties accept no other
    keys (unless marked to preserve unknown fields), as server-side apply with strict field
    validation rejects them."""
    if isinstance(schema, dict):
        s = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in s
            and "additionalProperties" not in s
            and not s.get("x-kubernetes-preserve-unknown-fields")
        ):
            s["additionalProperties"] = False
        return s
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def crd_schemas(docs) -> dict[tuple[str, str], tuple[dict, bool]]:
    """(apiVersion, kind) -> (strict schema, namespaced) for every CRD among docs."""
    out = {}
    for d in docs:
        if not isinstance(d, dict) or d.get("kind") != "CustomResourceDefinition":
            continue
        spec = d["spec"]
        for v in spec["versions"]:
            if not v.get("served", True):
                continue
            schema = strict(v["schema"]["openAPIV3Schema"])
            out[(f"{spec['group']}/{v['name']}", spec["names"]["kind"])] = (schema, spec["scope"] == "Namespaced")
    return out


@functools.lru_cache(maxsize=4)
def reference_schemas(ref: Path) -> dict:
    schemas = {}
    crds = need(ref, "crds")
    for p in sorted(crds.rglob("*.yaml")):
        schemas.update(crd_schemas(load_all(p.read_text())))
    for kind, f, namespaced in (
        ("CiliumNetworkPolicy", "ciliumnetworkpolicy_v2.json", True),
        ("CiliumClusterwideNetworkPolicy", "ciliumclusterwidenetworkpolicy_v2.json", False),
    ):
        schemas[("cilium.io/v2", kind)] = (
            json.loads(need(ref, f"crds/cilium-1.18.2-jsonschema/{f}").read_text()),
            namespaced,
        )
    schemas.update(crd_schemas(load_all(need(ref, "argocd/install-v3.5.1.yaml").read_text())))
    return schemas


def schema_errors(schema: dict, doc, where: str) -> list[str]:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    out = []
    for e in sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(x) for x in e.absolute_path) or "(top)"
        out.append(f"{where}: {path}: {e.message[:300]}")
    return out


def check_objects(tree: Tree, ref: Path) -> list[str]:
    """Applications, the AppProject and every manifest against their CRD schemas."""
    schemas = reference_schemas(ref)
    errs = []
    root, e = root_application(tree)
    if root is None:
        return e
    objs = [(argocd_root(tree) / "bootstrap" / "root.yaml", root)]
    objs += [(p, d) for p in discovered(tree, root) for d in tree.docs.get(p, [])]
    for d in manifest_dirs(tree):
        objs += manifests(tree, d)
    for p, doc in objs:
        where = tree.rel(p)
        if not isinstance(doc, dict):
            errs.append(f"{where}: not a Kubernetes object")
            continue
        key = (doc.get("apiVersion"), doc.get("kind"))
        name = (doc.get("metadata") or {}).get("name")
        where = f"{where} ({key[1]} {name})"
        if key in CORE_KINDS:
            continue
        if key not in schemas:
            errs.append(f"{where}: no CRD schema for {key[0]} {key[1]} in the reference fixtures")
            continue
        schema, namespaced = schemas[key]
        has_ns = bool((doc.get("metadata") or {}).get("namespace"))
        if has_ns != namespaced:
            errs.append(f"{where}: {'namespaced' if namespaced else 'cluster-scoped'} kind {'without' if namespaced else 'with'} metadata.namespace")
        errs += schema_errors(schema, doc, where)
    return errs


# ---- Helm values -----------------------------------------------------------------------------


def merge(base, over):
    """Helm's coalescing: maps merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v) if k in base else v
        return out
    return copy.deepcopy(over)


def unknown_keys(ours, chart, path: str, commented: set[str]) -> list[str]:
    """Keys of ours that the chart's values.yaml does not know. A map the chart leaves empty
    (`{}`) or null is free-form; lists and scalars are replaced whole."""
    out = []
    if not isinstance(ours, dict) or not isinstance(chart, dict) or not chart:
        return out
    for k, v in ours.items():
        p = f"{path}.{k}" if path else k
        if k in chart:
            out += unknown_keys(v, chart[k], p, commented)
        elif p not in commented:
            out.append(p)
    return out


def chart_reference(ref: Path, chart: str, version: str) -> tuple[Path, Path | None]:
    if chart == "cilium":
        return need(ref, f"cilium/values-{version}.yaml"), need(ref, f"cilium/values-{version}.schema.json")
    d = need(ref, f"charts/{chart}-{version}")
    schema = d / "values.schema.json"
    return d / "values.yaml", schema if schema.is_file() else None


def check_values(tree: Tree, ref: Path) -> list[str]:
    errs = []
    for app, chart, version, files in helm_sources(tree):
        if CHARTS.get(chart, (None, None))[1] != version:
            continue  # check_applications names the unpinned chart; no reference data for it
        defaults_path, schema_path = chart_reference(ref, chart, version)
        defaults = load(defaults_path.read_text()) or {}
        commented = COMMENTED_KEYS.get(chart, set())
        text = defaults_path.read_text()
        for key in commented:
            last = key.rsplit(".", 1)[-1]
            if not re.search(rf"^\s*#\s*{re.escape(last)}:", text, re.M):
                errs.append(f"scripts/check_gitops.py: {chart} values.yaml has no commented {last}: (COMMENTED_KEYS is stale)")
        merged = defaults
        for f in files:
            ours = tree.one(f)
            if ours is None:
                errs.append(f"{tree.rel(f)}: a values file must hold one YAML map")
                continue
            for k in unknown_keys(ours, defaults, "", commented):
                errs.append(f"{tree.rel(f)}: {k} is not a value of chart {chart} {version}")
            merged = merge(merged, ours)
        if schema_path is not None:
            schema = json.loads(schema_path.read_text())
            errs += schema_errors(schema, merged, f"{tree.rel(app)} (values of {chart} {version})")
    return errs


def check_cilium_handover(tree: Tree, ref: Path) -> list[str]:
    """The cilium app's first values file is exactly the Terraform install's options."""
    want = load(need(ref, "cilium/talos-full-values.yaml").read_text())
    p = argocd_root(tree) / "apps" / "cilium" / "values.yaml"
    if tree.one(p) != want:
        return [f"{tree.rel(p)}: differs from the options infraflux_cilium_install applies (reference cilium/talos-full-values.yaml)"]
    return []


# ---- Prometheus ------------------------------------------------------------------------------


def check_prometheus(tree: Tree) -> list[str]:
    tool = promtool()
    errs = []
    with tempfile.TemporaryDirectory() as tmp:
        for d in manifest_dirs(tree):
            for p, doc in manifests(tree, d):
                if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
                    f = Path(tmp) / f"{doc['metadata']['name']}.rules.yaml"
                    f.write_text(yaml.safe_dump({"groups": doc.get("spec", {}).get("groups", [])}))
                    r = subprocess.run([tool, "check", "rules", str(f)], capture_output=True, text=True)
                    if r.returncode != 0:
                        errs.append(f"{tree.rel(p)} (PrometheusRule {doc['metadata']['name']}): promtool check rules: {(r.stdout + r.stderr).strip()}")
        for _, chart, _, files in helm_sources(tree):
            if chart != "kube-prometheus-stack":
                continue
            for f in files:
                extra = (((tree.one(f) or {}).get("prometheus") or {}).get("prometheusSpec") or {}).get("additionalScrapeConfigs")
                if not extra:
                    continue
                # Debian's promtool is built without Kubernetes service discovery: swap those
                # blocks for empty static ones so the rest (relabelings, scheme) is still checked.
                jobs = []
                for job in copy.deepcopy(extra):
                    if isinstance(job, dict) and job.pop("kubernetes_sd_configs", None) is not None:
                        job.setdefault("static_configs", [{"targets": []}])
                    jobs.append(job)
                cfg = Path(tmp) / "prometheus.yml"
                cfg.write_text(yaml.safe_dump({"scrape_configs": jobs}))
                r = subprocess.run([tool, "check", "config", "--syntax-only", str(cfg)], capture_output=True, text=True)
                if r.returncode != 0:
                    errs.append(f"{tree.rel(f)}: additionalScrapeConfigs: promtool check config: {(r.stdout + r.stderr).strip()}")
    return errs


# ---- Grafana dashboards ----------------------------------------------------------------------


def provisioned_datasources(tree: Tree) -> dict[str, str]:
    """uid or name -> type of the datasources the monitoring stack provisions."""
    out: dict[str, str] = {}
    for _, chart, _, files in helm_sources(tree):
        if chart != "kube-prometheus-stack":
            continue
        graf: dict = {}
        for f in files:
            graf = merge(graf, (tree.one(f) or {}).get("grafana") or {})
        ds = (graf.get("sidecar") or {}).get("datasources") or {}
        if ds.get("enabled", True) and ds.get("defaultDatasourceEnabled", True):
            out[ds.get("uid", "prometheus")] = "prometheus"
            out[ds.get("name", "Prometheus")] = "prometheus"
        for extra in graf.get("additionalDataSources") or []:
            for k in ("uid", "name"):
                if extra.get(k):
                    out[extra[k]] = extra.get("type", "")
    return out


def datasource_refs(node):
    """Every `datasource` value in a dashboard (panels, targets, template variables)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                yield v
            yield from datasource_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from datasource_refs(v)


def check_dashboards(tree: Tree) -> list[str]:
    errs = []
    known = provisioned_datasources(tree)
    dashboards = []
    for d in manifest_dirs(tree):
        for p, doc in manifests(tree, d):
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap" and "grafana_dashboard" in (doc["metadata"].get("labels") or {}):
                for fname, text in (doc.get("data") or {}).items():
                    dashboards.append((f"{tree.rel(p)} ({fname})", text))
    if not dashboards:
        errs.append("no Grafana dashboard ConfigMap found (monitoring manifests)")
    for where, text in dashboards:
        try:
            dash = json.loads(text)
        except json.JSONDecodeError as e:
            errs.append(f"{where}: not JSON: {e}")
            continue
        for k in ("uid", "title", "panels"):
            if not dash.get(k):
                errs.append(f"{where}: has no {k}")
        variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list") or []}
        for v in variables.values():
            if v.get("type") == "datasource" and v.get("query") not in set(known.values()):
                errs.append(f"{where}: variable ${v.get('name')} picks {v.get('query')!r} datasources; none is provisioned")
        for ref in datasource_refs(dash.get("panels", []) + list(variables.values())):
            uid = ref.get("uid") if isinstance(ref, dict) else ref
            if uid is None:
                continue
            m = re.fullmatch(r"\$\{?(\w+)\}?", str(uid))
            if m:
                if (variables.get(m.group(1)) or {}).get("type") != "datasource":
                    errs.append(f"{where}: datasource {uid} is no datasource variable of the dashboard")
            elif uid not in known:
                errs.append(f"{where}: datasource {uid!r} is not provisioned (known: {sorted(known)})")
        for panel in dash.get("panels", []):
            for t in panel.get("targets") or []:
                if not t.get("expr"):
                    errs.append(f"{where}: panel {panel.get('title')!r} has a target without a query")
    return errs


# ---- Talos patches ---------------------------------------------------------------------------


def loose(schema):
    """Talos's config schema without `required`: a patch is a partial config."""
    if isinstance(schema, dict):
        return {k: loose(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [loose(v) for v in schema]
    return schema


def check_talos_patches(tree: Tree, ref: Path) -> list[str]:
    schema = json.loads(need(ref, "talos/config.schema-v1.13.9.json").read_text())
    defs = schema.get("$defs") or schema.get("definitions")
    cfg = loose(strict({**defs["v1alpha1.Config"], "$defs": defs}))
    errs = []
    patches = sorted(argocd_root(tree).rglob("talos-patch.yaml"))
    if not patches:
        errs.append("no talos-patch.yaml found (monitoring, longhorn)")
    for p in patches:
        for doc in tree.docs.get(p, []):
            errs += schema_errors(cfg, doc, tree.rel(p))
    return errs


# ---- main ------------------------------------------------------------------------------------


def run(tree_root: Path, ref: Path) -> tuple[list[str], list[str]]:
    """All checks over tree_root: (errors, skip messages)."""
    tree = Tree(tree_root)
    errors, skips = list(tree.errors), []
    checks = [
        ("applications", lambda: check_applications(tree)),
        ("CRD schemas", lambda: check_objects(tree, ref)),
        ("chart values", lambda: check_values(tree, ref)),
        ("cilium hand-over", lambda: check_cilium_handover(tree, ref)),
        ("prometheus", lambda: check_prometheus(tree)),
        ("dashboards", lambda: check_dashboards(tree)),
        ("talos patches", lambda: check_talos_patches(tree, ref)),
    ]
    for name, check in checks:
        try:
            errors += check()
        except Skip as s:
            skips.append(f"{name}: {s}")
    return errors, skips


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=REPO / "gitops", help="the gitops/ folder")
    ap.add_argument("--reference", help="the reference fixtures (default: ../shared/reference)")
    a = ap.parse_args()
    errors, skips = run(a.tree, reference_root(a.reference))
    for s in skips:
        print(s, file=sys.stderr)
    for e in errors:
        print(f"error: {e}")
    print(f"check_gitops: {len(errors)} error(s), {len(skips)} check(s) skipped")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
