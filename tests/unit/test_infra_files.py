"""infra/ is checked without a Docker engine or a cluster: the compose file against the
compose-spec JSON schema (vendored: infra/schemas/compose-spec.json), the Kubernetes manifests
against the schemas kubernetes-validate ships (strict: unknown fields are errors), the
dashboard's and Prometheus's files against the metrics the service really exports."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from voting.settings import variables

INFRA = Path(__file__).resolve().parents[2] / "infra"
K8S_VERSIONS = ("1.30", "1.37")  # the oldest supported Kubernetes release and the newest
SERVICES = {
    "migrate", "public", "admin", "persister", "nginx", "valkey-primary", "valkey-replica",
    "sentinel", "postgres", "prometheus", "grafana",
}  # fmt: skip
#: the metric names the service exports (voting/metrics.py)
EXPORTED = {
    "voting_ballots_accepted_total",
    "voting_ballots_refused_total",
    "voting_script_duration_seconds_bucket",
    "voting_credentials_issued_total",
    "voting_ballots_persisted_total",
    "voting_backlog_ballots",
    "voting_persister_lag_seconds",
    "voting_request_duration_seconds_bucket",
    "voting_request_duration_seconds_count",
}
SETTINGS = {name for name, _ in variables()}


def compose() -> dict:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def compose_errors(doc: dict) -> list[str]:
    schema = json.loads((INFRA / "schemas" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def manifests() -> list[tuple[str, dict]]:
    return [
        (path.name, doc)
        for path in sorted((INFRA / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def test_the_compose_file_follows_the_compose_spec():
    assert compose_errors(compose()) == []


def test_the_schema_check_catches_a_broken_compose_file():
    broken = copy.deepcopy(compose())
    broken["services"]["public"]["command"] = {"serve": True}
    broken["services"]["nginx"]["porst"] = ["80:8080"]
    errors = compose_errors(broken)
    assert any(e.startswith("['services', 'public', 'command']") for e in errors), errors
    assert any("'porst' does not match" in e for e in errors), errors


def test_compose_runs_every_part_and_refers_only_to_what_exists():
    doc = compose()
    services = doc["services"]
    assert set(services) == SERVICES
    assert services["public"]["deploy"]["replicas"] >= 2
    assert services["public"]["command"][:2] == ["serve", "--public"]
    assert services["admin"]["command"] == ["serve", "--admin"]
    assert services["persister"]["command"] == ["persister"]
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, (name, needed)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):  # a file of this repository, mounted read-only
                assert (INFRA / source).exists(), (name, source)
                assert volume.endswith(":ro"), (name, volume)
            else:
                assert source in doc["volumes"], (name, source)
        for variable in service.get("environment", {}):
            if variable.startswith("VOTING_"):
                assert variable in SETTINGS, (name, variable)
    assert (INFRA / "Dockerfile").is_file()


def test_nginx_in_compose_runs_the_shipped_nginx_conf():
    command = " ".join(compose()["services"]["nginx"]["command"])
    replaced = re.search(r"sed 's/(.+?)/(.+?)/'", command)
    assert replaced is not None
    assert replaced.group(1).replace("\\", "") in (INFRA / "nginx.conf").read_text()
    assert "server public:8000;" == replaced.group(2)
    conf = (INFRA / "nginx.conf").read_text()
    for directive in ("client_header_timeout", "client_body_timeout", "proxy_read_timeout"):
        assert directive in conf


def test_the_trusted_proxy_is_nginx():
    doc = compose()
    nginx_address = doc["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    assert doc["x-voting"]["environment"]["VOTING_TRUSTED_PROXIES"] == nginx_address


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_kubernetes_manifest_is_valid(version):
    found = manifests()
    kinds = {doc["kind"] for _, doc in found}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"} <= kinds
    assert {"Job", "Ingress", "HorizontalPodAutoscaler", "Namespace"} <= kinds
    for name, doc in found:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}: {exc}")


def test_the_kubernetes_check_catches_a_broken_manifest():
    deployment = next(doc for _, doc in manifests() if doc["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)
    unknown = copy.deepcopy(deployment)
    unknown["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, K8S_VERSIONS[-1], strict=True)


def test_kubernetes_settings_are_real_settings_and_secrets_stay_secret():
    found = dict(
        (doc["kind"], doc) for _, doc in manifests() if doc["kind"] in ("ConfigMap", "Secret")
    )
    config, secret = found["ConfigMap"]["data"], found["Secret"]["stringData"]
    assert set(config) | set(secret) <= SETTINGS
    secret_fields = {name for name, f in variables() if not f.repr}
    assert not secret_fields & set(config)  # keys live in the Secret only
    assert {"VOTING_SECRET_KEYS", "VOTING_IDENTITY_KEY", "VOTING_DATABASE_URL"} <= set(secret)
    for _, doc in manifests():
        if doc["kind"] == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
            assert refs == {"voting"}


def test_the_dashboard_shows_only_exported_metrics_and_every_required_panel():
    dashboard = json.loads((INFRA / "grafana" / "dashboards" / "voting.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bvoting_[a-z_]+", e)}
    assert used and used <= EXPORTED, used - EXPORTED
    assert used == EXPORTED  # and every exported metric is on a panel
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for wanted in ("ballots accepted", "refused", "p50 / p99", "backlog", "lag", "script"):
        assert wanted in titles, wanted
    quantiles = [e for e in exprs if "histogram_quantile(0.99" in e]
    assert any("voting_request_duration_seconds_bucket" in e for e in quantiles)
    assert any("voting_script_duration_seconds_bucket" in e for e in quantiles)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    provisioning = yaml.safe_load(
        (INFRA / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {
        provisioning["datasources"][0]["uid"]
    }


def test_prometheus_scrapes_every_voting_service_on_the_metrics_port():
    config = yaml.safe_load((INFRA / "prometheus.yml").read_text())
    port = int(compose()["x-voting"]["environment"]["VOTING_METRICS_PORT"])
    scraped = {}
    for job in config["scrape_configs"]:
        for sd in job["dns_sd_configs"]:
            assert sd["port"] == port
            scraped.update(dict.fromkeys(sd["names"], job["job_name"]))
    assert set(scraped) == {"public", "admin", "persister"}
