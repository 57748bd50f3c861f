"""The Helm chart: helm's own lint and renderer (the Helm Go library via helm-python-sdk),
and every rendered manifest validated against the Kubernetes schemas."""

from pathlib import Path

import helm_python
import kubernetes_validate
import pytest
import yaml

CHART = Path(__file__).resolve().parent.parent / "helm" / "ngshare"
KUBE_VERSION = "1.30"
MULTI = {
    "replicas": 3,
    "database": {"existingSecret": "ngshare-db"},
    "s3": {"bucket": "exchange", "endpointUrl": "http://minio:9000", "existingSecret": "s3"},
    "admins": ["alice", "bob"],
    "groupSync": {"studentGroups": "nbgrader-{course}"},
    "metricsToken": "prom",
}


def render(values: dict | None = None) -> dict[str, list[dict]]:
    chart = helm_python.Chart.load(CHART)
    rendered = chart.render(values or {}, name="exchange", namespace="jhub", is_install=True)
    documents: dict[str, list[dict]] = {}
    for path, text in rendered.items():
        if path.endswith(".txt"):
            continue
        documents[path] = [doc for doc in yaml.safe_load_all(text) if doc]
    return documents


def by_kind(documents: dict[str, list[dict]]) -> dict[str, dict]:
    return {doc["kind"]: doc for docs in documents.values() for doc in docs}


@pytest.mark.parametrize("values", [{}, MULTI], ids=["single-sqlite", "replicas-pg-s3"])
def test_chart_lints_clean(values):
    report = helm_python.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("values", [{}, MULTI], ids=["single-sqlite", "replicas-pg-s3"])
def test_rendered_manifests_match_kubernetes_schemas(values):
    for docs in render(values).values():
        for doc in docs:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_single_replica_sqlite_mode():
    kinds = by_kind(render())
    assert set(kinds) == {"Deployment", "Service", "Secret", "PersistentVolumeClaim"}
    spec = kinds["Deployment"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    volume = spec["template"]["spec"]["volumes"][0]
    assert volume["persistentVolumeClaim"]["claimName"] == "exchange-ngshare"
    env = {e["name"]: e for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert "NGSHARE_DATABASE_URL" not in env and "NGSHARE_STORAGE" not in env


def test_replicas_with_postgres_and_s3():
    kinds = by_kind(render(MULTI))
    assert "PersistentVolumeClaim" not in kinds
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    deployment = kinds["Deployment"]["spec"]
    assert deployment["replicas"] == 3 and "strategy" not in deployment
    pod = deployment["template"]
    assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["NGSHARE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "ngshare-db",
        "key": "url",
    }
    assert env["NGSHARE_STORAGE"]["value"] == "s3"
    assert env["NGSHARE_ADMINS"]["value"] == "alice,bob"
    assert env["NGSHARE_HUB_STUDENT_GROUPS"]["value"] == "nbgrader-{course}"
    assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == "/services/ngshare/"
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "api-token"
    assert container["envFrom"] == [{"secretRef": {"name": "s3"}}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"data", "tmp"}


def test_secret_is_kept_and_given_values_are_used():
    secret = by_kind(render({"hub": {"apiToken": "abc"}, "cookieSecret": "def"}))["Secret"]
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert secret["data"]["api-token"] == "YWJj" and secret["data"]["cookie-secret"] == "ZGVm"
    generated = by_kind(render())["Secret"]["data"]
    assert len(generated["api-token"]) > 60


def test_replicas_without_external_state_are_refused():
    with pytest.raises(helm_python.HelmError, match=r"replicas > 1 needs database\.url"):
        render({"replicas": 2})


def test_notes_print_the_hub_and_nbgrader_snippets():
    chart = helm_python.Chart.load(CHART)
    notes = chart.render({}, name="exchange", namespace="jhub", is_install=True)
    text = next(v for k, v in notes.items() if k.endswith("NOTES.txt"))
    assert "url: http://exchange-ngshare.jhub:8080" in text
    assert "oauth_redirect_uri: /services/ngshare/oauth_callback" in text
    assert 'configure(c, url="http://proxy-public/services/ngshare")' in text


def test_dockerfile_runs_unprivileged_with_a_healthcheck():
    text = (CHART.parent.parent / "Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms and all(":" in image and "latest" not in image for image in froms)
    assert "USER 10001:10001" in text and "HEALTHCHECK" in text and "/healthz" in text
