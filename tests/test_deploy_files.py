"""The deployment files under ``deploy/``, the ``Dockerfile`` and the code they refer to.

Nothing here runs Docker or Kubernetes: the files are parsed (JSON fully; YAML fully when a
YAML parser happens to be installed, else by a structural check of the block style they are
written in) and every name they share with the code is checked against it: metric names,
health paths, the uv version, the TOML config and the environment the manifests set.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from streamserver.metrics import Metrics
from streamserver.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
JSON_FILES = sorted(DEPLOY.rglob("*.json"))
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "streamserver.json"
K8S = DEPLOY / "k8s"
METRIC = re.compile(r"\bstreamserver_[a-z_]+[a-z]\b")


def _known_metrics() -> set[str]:
    """Every family a host's /metrics can show: a worker's and the supervisor's."""
    names = set(re.findall(r"^# TYPE (streamserver_\w+) ", Metrics().render(), re.M))
    supervisor = (ROOT / "streamserver" / "supervisor.py").read_text()
    names |= set(re.findall(r"# TYPE (streamserver_\w+) ", supervisor))
    return names


def _documents(path: Path) -> list[str]:
    return [d for d in re.split(r"^---\s*$", path.read_text(), flags=re.M) if d.strip()]


def _check_block_yaml(path: Path) -> None:
    """What a YAML parser would reject first in our block-style files: tabs, odd indents,
    a mapping line without ``key:``, a block scalar (``|``) that has no body."""
    lines = path.read_text().splitlines()
    scalar_indent: int | None = None  # inside a block scalar deeper than this
    for n, line in enumerate(lines, 1):
        where = f"{path.relative_to(ROOT)}:{n}"
        assert "\t" not in line, f"{where}: tab"
        stripped = line.strip()
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip(" "))
        if scalar_indent is not None:
            if indent > scalar_indent:
                continue
            scalar_indent = None
        if stripped.startswith("#"):
            continue
        assert indent % 2 == 0, f"{where}: indent of {indent}"
        item = stripped[2:] if stripped.startswith("- ") else stripped
        if stripped == "-" or item.startswith(("'", '"', "[", "{", "*")) or ":" not in item:
            assert stripped.startswith("-"), f"{where}: neither `key: value` nor a list item"
        if re.search(r"(?::|^-)\s*[|>][-+]?\s*$", stripped):
            scalar_indent = indent
            body = next((x for x in lines[n:] if x.strip()), "")
            assert len(body) - len(body.lstrip(" ")) > indent, f"{where}: empty block scalar"


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_json_files_parse(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_files_parse(path: Path) -> None:
    _check_block_yaml(path)
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        return
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


def test_yaml_and_json_files_found() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in [*YAML_FILES, *JSON_FILES]}
    assert {"compose.yaml", "prometheus.yml", "grafana/dashboards/streamserver.json"} <= names
    assert {f"k8s/{n}.yaml" for n in ("deployment", "service", "pdb", "hpa", "configmap")} <= names


def test_k8s_documents_have_kind_and_name() -> None:
    kinds: set[str] = set()
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _documents(path):
            kind = re.search(r"^kind: (\w+)$", doc, re.M)
            assert kind and re.search(r"^apiVersion: \S+$", doc, re.M), path.name
            kinds.add(kind.group(1))
            if kind.group(1) != "Kustomization":
                assert re.search(r"^metadata:\n(  .*\n)*?  name: [\w-]+$", doc, re.M), path.name
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds
    assert "ConfigMap" in kinds
    listed = re.findall(r"^  - (\S+\.yaml)$", (K8S / "kustomization.yaml").read_text(), re.M)
    assert listed and all((K8S / name).is_file() for name in listed)


def test_dashboard_and_hpa_metrics_exist() -> None:
    known = _known_metrics()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    used = {name for e in exprs for name in METRIC.findall(e)}
    hpa = (K8S / "hpa.yaml").read_text()
    used_hpa = set(METRIC.findall(hpa))
    assert "streamserver_streams_active" in used and "streamserver_streams_active" in used_hpa
    assert used | used_hpa <= known, sorted((used | used_hpa) - known)
    # Every panel the issue asks for is there.
    for name in (
        "streamserver_media_frames_total",
        "streamserver_handler_dropped_samples_total",
        "streamserver_gaps_total",
        "streamserver_event_loop_lag_seconds",
        "streamserver_close_codes_total",
    ):
        assert name in used, name
    # ... per worker, from the datasource Grafana is provisioned with.
    assert any("by (instance, worker)" in e for e in exprs)
    datasource = (
        DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
    ).read_text()
    uid = re.search(r"^\s+uid: (\S+)$", datasource, re.M)
    assert uid and {p["datasource"]["uid"] for p in dashboard["panels"]} == {uid.group(1)}


def test_dockerfile_uses_the_makefiles_uv() -> None:
    makefile = re.search(r"^UV_VERSION\s*:?=\s*(\S+)$", (ROOT / "Makefile").read_text(), re.M)
    docker = re.search(r"^ARG UV_VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert makefile and docker and docker.group(1) == makefile.group(1)


def test_dockerfile_essentials() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM \S+ AS build$", text, re.M)
    assert "python:3.11-slim" in text
    assert "uv export --frozen --no-dev" in text
    assert re.search(r"^USER (?!0\b|root\b)\S+$", text, re.M)
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert 'ENTRYPOINT ["streamserver", "serve", "--host", "0.0.0.0"]' in text
    health = re.search(r"^HEALTHCHECK (?:.*\\\n)*.*$", text, re.M)
    assert health and "/healthz" in health.group(0) and "urllib" in health.group(0)
    # What the build stage copies is not excluded from the build context.
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for name in copied.split():
            assert name not in ignored and (ROOT / name).exists(), name


def test_health_paths_exist() -> None:
    """The paths the Dockerfile, compose and the probes use are the gate's."""
    gate = (ROOT / "streamserver" / "net" / "gate.py").read_text()
    served = set(re.findall(r'path == "(/\w+)"', gate))
    assert {"/healthz", "/readyz", "/metrics"} <= served
    deployment = (K8S / "deployment.yaml").read_text()
    probes = dict(
        re.findall(r"(readinessProbe|livenessProbe):\n(?:\s+.*\n)*?\s+path: (\S+)", deployment)
    )
    assert probes == {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    prometheus = (DEPLOY / "prometheus.yml").read_text()
    assert re.findall(r"metrics_path: (\S+)", prometheus) == ["/metrics"]
    assert "streamserver:8080" in prometheus


def test_grace_period_covers_the_drain() -> None:
    config = _configmap_toml()
    deployment = (K8S / "deployment.yaml").read_text()
    grace = re.search(r"terminationGracePeriodSeconds: (\d+)", deployment)
    server = config["server"]
    assert grace and int(grace.group(1)) >= 3600
    assert int(grace.group(1)) > server["drain_timeout_s"] + server["handler_stop_timeout_s"]


def _configmap_toml() -> dict[str, object]:
    text = (K8S / "configmap.yaml").read_text()
    block = re.search(r"^  streamserver\.toml: \|\n((?:    .*\n|\n)+)", text, re.M)
    assert block
    body = "\n".join(line[4:] for line in block.group(1).splitlines())
    return tomllib.loads(body)


def test_configmap_config_and_env_load(tmp_path: Path) -> None:
    """The ConfigMap's TOML and environment are a valid configuration of this version."""
    config = tmp_path / "streamserver.toml"
    text = (K8S / "configmap.yaml").read_text()
    block = re.search(r"^  streamserver\.toml: \|\n((?:    .*\n|\n)+)", text, re.M)
    assert block
    config.write_text("\n".join(line[4:] for line in block.group(1).splitlines()))
    env_doc = next(d for d in _documents(K8S / "configmap.yaml") if "name: streamserver-env" in d)
    environ = dict(re.findall(r'^  (STREAMSERVER_\w+): "(.*)"$', env_doc, re.M))
    assert "STREAMSERVER_BUS__URL" in environ and "STREAMSERVER_STORAGE__URL" in environ
    settings = load_settings(config, environ=environ)
    assert settings.server.host == "0.0.0.0" and settings.server.port == 8080
    assert settings.server.drain_timeout_s == 3600.0


def test_compose_services() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    services = set(
        re.findall(
            r"^  ([\w-]+):$", text.split("\nservices:\n", 1)[1].split("\nvolumes:\n")[0], re.M
        )
    )
    assert {"streamserver", "nats", "seaweedfs", "prometheus", "grafana"} <= services
    assert "image: nats:2" in text and '"-js"' in text
    assert "image: chrislusf/seaweedfs" in text and "- -s3" in text
    assert re.search(r'command: \["--workers", "\d+"', text)
    for mounted in re.findall(r"- \./([\w./-]+):", text):
        assert (DEPLOY / mounted).exists(), mounted
