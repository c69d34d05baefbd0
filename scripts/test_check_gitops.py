"""Unit tests of scripts/check_gitops.py: the real tree passes, and a copy broken in one place
fails with an error naming that place — one test per check, so none can pass vacuously.

    .venv/bin/python -m unittest scripts/test_check_gitops.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_gitops as cg  # noqa: E402

TREE = cg.REPO / "gitops"
REF = cg.reference_root(None)
APPS = Path("argocd/apps")


def edit_yaml(path: Path, change, index: int = 0):
    docs = list(yaml.safe_load_all(path.read_text()))
    change(docs[index])
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        # The copy keeps the tree's place relative to its parent (paths in Applications are
        # relative to the repository root, i.e. the tree's parent).
        self.tree = Path(self.tmp.name) / "gitops"
        shutil.copytree(TREE, self.tree)

    def tearDown(self):
        self.tmp.cleanup()

    def errors(self) -> list[str]:
        errors, skips = cg.run(self.tree, REF)
        if skips:
            self.skipTest("; ".join(skips))
        return errors

    def assertFails(self, *needles: str):
        errors = self.errors()
        text = "\n".join(errors)
        self.assertTrue(errors, "the broken copy passed every check")
        for n in needles:
            self.assertIn(n, text)


class RealTree(Base):
    def test_the_tree_passes_every_check(self):
        self.assertEqual(self.errors(), [])

    def test_the_root_picks_up_one_application_per_component_and_the_project(self):
        root, _ = cg.root_application(cg.Tree(self.tree))
        picked = sorted(str(p.relative_to(self.tree / APPS)) for p in cg.discovered(cg.Tree(self.tree), root))
        components = sorted(p.name for p in (self.tree / APPS).iterdir() if p.is_dir())
        self.assertEqual(picked, sorted(["project.yaml"] + [f"{c}/application.yaml" for c in components]))


class Broken(Base):
    def test_yaml_that_does_not_parse(self):
        (self.tree / APPS / "headlamp" / "values.yaml").write_text("config: [unclosed\n")
        self.assertFails("headlamp/values.yaml: does not parse")

    def test_a_component_the_root_does_not_pick_up(self):
        (self.tree / APPS / "headlamp" / "application.yaml").rename(self.tree / APPS / "headlamp" / "app.yaml")
        self.assertFails("does not pick up headlamp/application.yaml")

    def test_an_application_field_the_crd_does_not_know(self):
        edit_yaml(self.tree / APPS / "longhorn" / "application.yaml", lambda d: d["spec"]["syncPolicy"].update(selfHeal=True))
        self.assertFails("longhorn/application.yaml (Application longhorn): spec/syncPolicy", "selfHeal")

    def test_an_application_without_self_heal(self):
        edit_yaml(self.tree / APPS / "longhorn" / "application.yaml", lambda d: d["spec"]["syncPolicy"]["automated"].pop("selfHeal"))
        self.assertFails("longhorn/application.yaml: syncPolicy.automated needs prune and selfHeal")

    def test_a_chart_at_another_version(self):
        edit_yaml(self.tree / APPS / "tetragon" / "application.yaml", lambda d: d["spec"]["sources"][0].update(targetRevision="1.6.0"))
        self.assertFails("chart tetragon must come from https://helm.cilium.io at 1.7.0")

    def test_a_values_file_that_does_not_exist(self):
        (self.tree / APPS / "external-dns" / "provider-values.yaml").unlink()
        self.assertFails("value file gitops/argocd/apps/external-dns/provider-values.yaml does not exist")

    def test_a_repository_outside_the_project(self):
        edit_yaml(self.tree / APPS / "headlamp" / "application.yaml", lambda d: d["spec"]["sources"][0].update(repoURL="https://charts.example.org"))
        self.assertFails("https://charts.example.org is not among project platform's sourceRepos")

    def test_a_value_the_chart_does_not_know(self):
        edit_yaml(self.tree / APPS / "longhorn" / "values.yaml", lambda d: d["defaultSettings"].update(defaultDatapath="/x"))
        self.assertFails("longhorn/values.yaml: defaultSettings.defaultDatapath is not a value of chart longhorn")

    def test_a_value_the_chart_schema_rejects(self):
        edit_yaml(self.tree / APPS / "headlamp" / "values.yaml", lambda d: d.update(replicaCount="two"))
        self.assertFails("(values of headlamp 0.45.0): replicaCount")

    def test_cilium_values_that_drift_from_the_terraform_install(self):
        edit_yaml(self.tree / APPS / "cilium" / "values.yaml", lambda d: d.update(k8sServicePort=6443))
        self.assertFails("cilium/values.yaml: differs from the options infraflux_cilium_install applies")

    def test_a_tracing_policy_with_an_unknown_operator(self):
        p = self.tree / APPS / "tetragon" / "manifests" / "kubectl-exec-audit.yaml"
        edit_yaml(p, lambda d: d["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0].update(operator="EndsWith"))
        self.assertFails("kubectl-exec-audit.yaml (TracingPolicy kubectl-exec-audit): spec/kprobes/0/selectors/0/matchArgs/0/operator")

    def test_a_service_monitor_field_that_does_not_exist(self):
        p = self.tree / APPS / "monitoring" / "manifests" / "servicemonitors-tetragon.yaml"
        edit_yaml(p, lambda d: d["spec"]["endpoints"][0].update(scrapeEvery="30s"))
        self.assertFails("(ServiceMonitor tetragon): spec/endpoints/0", "scrapeEvery")

    def test_a_cluster_issuer_without_an_issuer_type_field_it_knows(self):
        p = self.tree / APPS / "cert-manager" / "manifests" / "clusterissuers.yaml"
        edit_yaml(p, lambda d: d["spec"].update(selfsigned={}))
        self.assertFails("(ClusterIssuer selfsigned): spec", "selfsigned")

    def test_a_gateway_listener_with_a_bad_protocol_port(self):
        p = self.tree / APPS / "gateway" / "manifests" / "gateway.yaml"
        edit_yaml(p, lambda d: d["spec"]["listeners"][0].update(port=700000))
        self.assertFails("(Gateway platform): spec/listeners/0/port")

    def test_a_cilium_policy_with_an_unknown_entity(self):
        p = self.tree / APPS / "policies" / "manifests" / "20-allow-kube-apiserver.yaml"
        edit_yaml(p, lambda d: d["spec"]["egress"][0].update(toEntities=["apiserver"]))
        self.assertFails("(CiliumClusterwideNetworkPolicy allow-kube-apiserver): spec/egress/0/toEntities/0")

    def test_a_namespaced_policy_without_a_namespace(self):
        p = self.tree / APPS / "policies" / "manifests" / "90-l7-http-example.yaml"
        edit_yaml(p, lambda d: d["metadata"].pop("namespace"))
        self.assertFails("(CiliumNetworkPolicy api-server-l7-get-only): namespaced kind without metadata.namespace")

    def test_an_alert_rule_promtool_rejects(self):
        p = self.tree / APPS / "monitoring" / "manifests" / "prometheusrules-cilium.yaml"
        edit_yaml(p, lambda d: d["spec"]["groups"][0]["rules"][0].update(expr="up{job=\"cilium-agent\" == 0"))
        self.assertFails("(PrometheusRule cilium): promtool check rules")

    def test_a_scrape_config_promtool_rejects(self):
        p = self.tree / APPS / "monitoring" / "values.yaml"
        edit_yaml(p, lambda d: d["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"][0]["relabel_configs"][0].update(action="keepall"))
        self.assertFails("additionalScrapeConfigs: promtool check config")

    def test_a_dashboard_that_is_not_json(self):
        (self.tree / APPS / "monitoring" / "manifests" / "dashboards" / "tetragon-events.json").write_text("{ not json")
        self.assertFails("tetragon-events.json: does not parse")

    def test_a_dashboard_naming_a_datasource_that_does_not_exist(self):
        p = self.tree / APPS / "monitoring" / "manifests" / "dashboards" / "tetragon-events.json"
        dash = json.loads(p.read_text())
        dash["panels"][0]["datasource"] = {"type": "prometheus", "uid": "thanos"}
        p.write_text(json.dumps(dash))
        self.assertFails("datasource 'thanos' is not provisioned")

    def test_a_talos_patch_with_a_field_talos_does_not_have(self):
        p = self.tree / APPS / "longhorn" / "talos-patch.yaml"
        edit_yaml(p, lambda d: d["machine"]["kubelet"].update(extraMount=[]))
        self.assertFails("longhorn/talos-patch.yaml: machine/kubelet", "extraMount")


class Glob(unittest.TestCase):
    def test_argo_cd_globs_cross_slashes_and_take_alternatives(self):
        self.assertTrue(cg.glob_match("{project.yaml,*/application.yaml}", "cilium/application.yaml"))
        self.assertTrue(cg.glob_match("{project.yaml,*/application.yaml}", "project.yaml"))
        self.assertFalse(cg.glob_match("{project.yaml,*/application.yaml}", "cilium/values.yaml"))
        self.assertTrue(cg.glob_match("*.yaml", "a/b/c.yaml"))


if __name__ == "__main__":
    unittest.main()
