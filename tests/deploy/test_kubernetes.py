"""The Kubernetes manifests in deploy/kubernetes/: every object is valid against the Kubernetes
OpenAPI schemas in strict mode (`kubernetes-validate`, offline), the Deployment runs at least two
probed, resource-bounded, non-root replicas, the Service, ConfigMap, Secret and the Postgres and
Redis StatefulSets fit together, and the ConfigMap's run.yaml parses as a RunConfig with exactly
the environment the pod gets."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError

from llama_stack.distribution.provider import Api
from tests.deploy.dockerfiles import hadolint, write_dockerfile
from tests.deploy.stack_files import DEPLOY, check_run_config, ensure_providers_of, network_addresses

K8S = DEPLOY / "kubernetes"
# The oldest Kubernetes still common on managed clouds, and the newest the package knows.
VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
HEALTH = "/alpha/health"


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "build.yaml", "run.yaml"):
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path.name, document))
    return found


MANIFESTS = manifests()


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in MANIFESTS if document["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in by_kind(kind) if d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def server_container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = one("Deployment", "llamastack")["spec"]["template"]["spec"]["containers"]
    return containers[0]


def test_the_manifests_hold_every_object_a_deployment_needs() -> None:
    kinds = sorted((document["kind"], document["metadata"]["name"]) for _, document in MANIFESTS)
    assert kinds == [
        ("ConfigMap", "llamastack-config"),
        ("Deployment", "llamastack"),
        ("Namespace", "llamastack"),
        ("PodDisruptionBudget", "llamastack"),
        ("Secret", "llamastack-secrets"),
        ("Service", "llamastack"),
        ("Service", "postgres"),
        ("Service", "redis"),
        ("StatefulSet", "postgres"),
        ("StatefulSet", "redis"),
    ]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("filename", "document"), MANIFESTS, ids=[f"{f}:{d['kind']}" for f, d in MANIFESTS])
def test_every_object_is_valid_against_the_kubernetes_schema(
    filename: str, document: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(document, version, strict=True)


def test_the_schema_rejects_a_mistyped_manifest() -> None:
    def replicas_in_words(d: dict[str, Any]) -> None:
        d["spec"]["replicas"] = "two"

    def misspelt_probe(d: dict[str, Any]) -> None:
        d["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}

    def port_as_a_word(d: dict[str, Any]) -> None:
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"

    for mistake in (replicas_in_words, misspelt_probe, port_as_a_word):
        broken = copy.deepcopy(one("Deployment", "llamastack"))
        mistake(broken)
        with pytest.raises(ValidationError):
            kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_file() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization" and kustomization["namespace"] == "llamastack"
    assert sorted(kustomization["resources"]) == sorted({filename for filename, _ in MANIFESTS})


def test_the_deployment_runs_probed_bounded_non_root_replicas() -> None:
    deployment = one("Deployment", "llamastack")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    container = server_container()
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    port = container["ports"][0]
    assert (port["name"], port["containerPort"]) == ("http", 5000)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": HEALTH, "port": "http"}, probe
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_service_and_the_budget_select_the_server_pods() -> None:
    labels = one("Deployment", "llamastack")["spec"]["template"]["metadata"]["labels"]
    service = one("Service", "llamastack")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == server_container()["ports"][0]["name"]
    budget = one("PodDisruptionBudget", "llamastack")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < one("Deployment", "llamastack")["spec"]["replicas"]


def test_postgres_and_redis_are_stateful_sets_with_volumes_and_services() -> None:
    for name in ("postgres", "redis"):
        statefulset = one("StatefulSet", name)
        assert statefulset["spec"]["serviceName"] == name
        assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        pod = statefulset["spec"]["template"]
        service = one("Service", name)
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        container = pod["spec"]["containers"][0]
        assert "readinessProbe" in container and "livenessProbe" in container
        assert ":" in container["image"] and not container["image"].endswith(":latest")


def secret_values() -> dict[str, str]:
    values: dict[str, str] = one("Secret", "llamastack-secrets")["stringData"]
    return values


def test_the_secret_holds_placeholders_the_pods_read() -> None:
    assert set(secret_values().values()) == {"change-me"}
    assert server_container()["envFrom"] == [{"secretRef": {"name": "llamastack-secrets"}}]
    for name in ("postgres", "redis"):
        env = one("StatefulSet", name)["spec"]["template"]["spec"]["containers"][0]["env"]
        refs = [e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e]
        assert refs and all(r["name"] == "llamastack-secrets" and r["key"] in secret_values() for r in refs)


def pod_environment() -> dict[str, str]:
    """What the server container's environment holds: its env values and the Secret's keys."""
    env = {e["name"]: e["value"] for e in server_container()["env"] if "value" in e}
    return {**env, **secret_values()}


def test_the_configmap_holds_run_yaml_and_it_parses_with_the_pods_environment(tmp_path: Path) -> None:
    text = one("ConfigMap", "llamastack-config")["data"]["run.yaml"]
    assert text == (K8S / "run.yaml").read_text(), "configmap.yaml and run.yaml must hold the same text"
    mount = next(m for m in server_container()["volumeMounts"] if m["name"] == "config")
    assert server_container()["command"] == ["llama", "stack", "run", f"{mount['mountPath']}/run.yaml"]
    volume = next(
        v for v in one("Deployment", "llamastack")["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"
    )
    assert volume["configMap"]["name"] == "llamastack-config"

    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(text)
    config = check_run_config(run_yaml, pod_environment())  # fails naming any variable the pod lacks
    assert config.registry_store().type == "postgres"
    assert config.providers[Api.memory][0].provider_type == "remote::pgvector"
    assert config.providers[Api.agents][0].config["persistence_store"]["type"] == "redis"
    services = {d["metadata"]["name"] for d in by_kind("Service")}
    assert set(network_addresses(config.model_dump())) - {"api.together.xyz"} <= services
    assert config.server.port == server_container()["ports"][0]["containerPort"]


def test_the_image_of_the_deployment_lints_clean(tmp_path: Path) -> None:
    ensure_providers_of(K8S / "run.yaml")
    dockerfile, plan = write_dockerfile(tmp_path, K8S / "build.yaml", K8S / "run.yaml")
    assert plan.extras == ("pgvector", "redis", "postgres") and not plan.needs_torch
    assert "USER 1000:1000" in dockerfile.read_text()
    assert hadolint(dockerfile) == []
