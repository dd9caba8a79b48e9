"""The Kubernetes deployment as code (config/k8s/base and its overlays): every manifest, and every overlay as
rendered, validates offline against a published schema,
the kustomization renders (its files exist and their references resolve), and the manifests keep the worker's
contract: the drain fits the grace period, the probe is the cheap liveness entry, the pod is locked down, and the
ConfigMap, the KEDA trigger and the IRSA policies name the same queue, table and service accounts."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import decode
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
from pydantic import BaseModel

from service.config import Settings
from tests.kustomize import render

ROOT = Path(__file__).parent.parent
K8S = ROOT / "config" / "k8s" / "base"
OVERLAYS = sorted(path for path in (ROOT / "config" / "k8s" / "overlays").iterdir() if path.is_dir())
IAM = ROOT / "config" / "k8s" / "iam"
BIN = Path(sys.executable).parent
KEDA_VERSION = "2.16"  # the KEDA release the manifests target; docs/kubernetes.md says the same
CORE_KINDS = {
    *("Namespace", "ServiceAccount", "ConfigMap", "Deployment", "PodDisruptionBudget", "NetworkPolicy"),
    "PriorityClass",
}
KEDA_MODELS: dict[str, type[BaseModel]] = {"ScaledObject": ScaledObject, "TriggerAuthentication": TriggerAuthentication}
# The aws-sqs-queue scaler's trigger parameters in KEDA 2.16 (its docs, "Trigger Specification" and
# "Authentication Parameters"); the models type `metadata` as a plain map, so a misspelt key needs this list.
SQS_SCALER_PARAMETERS = {
    *("queueURL", "queueURLFromEnv", "queueLength", "activationQueueLength", "awsRegion", "awsEndpoint"),
    *("scaleOnInFlight", "scaleOnDelayed", "identityOwner", "awsRoleArn", "awsAccessKeyID", "awsSecretAccessKey"),
}
# AWS SDK variables the ConfigMap may set besides the settings (README "Configuration").
SDK_VARIABLES = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_STS_REGIONAL_ENDPOINTS"}
# docs/performance.md, "What limits throughput": one process is CPU-bound at about 1,000 messages/s per vCPU,
# 72 MB peak RSS in the soak.
MESSAGES_PER_VCPU_S = 1_000
SOAK_PEAK_RSS_MIB = 72
DRAIN_TARGET_S = 30  # scaledobject.yaml: the backlog KEDA sees is drained within this
# Released at shutdown after SHUTDOWN_TIMEOUT_SECONDS (up to 5 s), plus slack before the kubelet's SIGKILL.
GRACE_MARGIN_S = 10


def kustomization() -> dict[str, Any]:
    return dict(yaml.safe_load((K8S / "kustomization.yaml").read_text()))


def manifests() -> dict[str, dict[str, Any]]:
    """Each resource the kustomization lists, by kind (one object per file, one object per kind here)."""
    found: dict[str, dict[str, Any]] = {}
    for name in kustomization()["resources"]:
        [document] = list(yaml.safe_load_all((K8S / name).read_text()))
        assert document["kind"] not in found, f"two {document['kind']} resources"
        found[document["kind"]] = document
    return found


def kind_in(name: str) -> str:
    return str(yaml.safe_load((K8S / name).read_text())["kind"])


def pod_spec() -> dict[str, Any]:
    return dict(manifests()["Deployment"]["spec"]["template"]["spec"])


def worker_container() -> dict[str, Any]:
    [container] = pod_spec()["containers"]
    return dict(container)


def config_map() -> dict[str, str]:
    return dict(manifests()["ConfigMap"]["data"])


def sqs_trigger() -> dict[str, Any]:
    [trigger] = manifests()["ScaledObject"]["spec"]["triggers"]
    return dict(trigger)


def policy(name: str) -> list[dict[str, Any]]:
    return list(json.loads((IAM / name).read_text())["Statement"])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def mebibytes(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity[:-2])


def kubernetes_validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "kubernetes-validate"), "--strict", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def keda_round_trip(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the KEDA model reads it: a field the CRD does not have is dropped, so it differs."""
    model = KEDA_MODELS[document["kind"]].model_validate(document)
    return dict(model.model_dump(mode="json", by_alias=True, exclude_unset=True))


# ---------------------------------------------------------------- schemas and rendering


def test_the_kustomization_lists_every_manifest_and_its_references_resolve() -> None:
    """Every file kustomize reads exists, every manifest in config/k8s is listed, and what one resource names
    (service account, ConfigMap, Deployment, TriggerAuthentication, pod labels, image) is another one's name."""
    listed = kustomization()["resources"]
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk
    assert len(listed) == len(set(listed))
    found = manifests()
    assert set(found) == CORE_KINDS | set(KEDA_MODELS)
    for document in found.values():
        assert "namespace" not in document["metadata"]  # kustomize sets it, once
    names = {kind: document["metadata"]["name"] for kind, document in found.items()}
    assert names["Namespace"] == kustomization()["namespace"]

    deployment = found["Deployment"]["spec"]
    pod_labels = deployment["template"]["metadata"]["labels"]
    assert deployment["selector"]["matchLabels"].items() <= pod_labels.items()
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pod_spec()["serviceAccountName"] == names["ServiceAccount"]
    assert worker_container()["envFrom"] == [{"configMapRef": {"name": names["ConfigMap"]}}]
    assert found["ScaledObject"]["spec"]["scaleTargetRef"]["name"] == names["Deployment"]
    assert sqs_trigger()["authenticationRef"]["name"] == names["TriggerAuthentication"]
    [image] = kustomization()["images"]
    assert worker_container()["image"] == image["name"]


def test_the_core_manifests_pass_kubernetes_validate_strict() -> None:
    """kubernetes-validate --strict (the Kubernetes OpenAPI schemas it bundles) accepts every core manifest."""
    paths = [K8S / name for name in kustomization()["resources"] if kind_in(name) in CORE_KINDS]
    assert len(paths) == len(CORE_KINDS)

    result = kubernetes_validate(*paths)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(paths), result.stdout


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda path: path.name)
def test_every_overlay_renders_and_passes_kubernetes_validate_strict_and_the_keda_models(
    overlay: Path, tmp_path: Path
) -> None:
    """Each overlay, rendered (base plus its patches), passes kubernetes-validate --strict for the core kinds and
    the KEDA 2.16 models for the others; its ConfigMap sets both allowlists and the queue KEDA watches, and its
    service account names an IRSA role."""
    documents = render(overlay)
    paths = []
    for n, document in enumerate(documents):
        if document["kind"] in KEDA_MODELS:
            assert keda_round_trip(document) == document
        else:
            paths.append(tmp_path / f"{n}.yaml")
            paths[-1].write_text(yaml.safe_dump(document))
    by_kind = {document["kind"]: document for document in documents}
    assert set(by_kind) == CORE_KINDS | set(KEDA_MODELS)

    result = kubernetes_validate(*paths)

    assert result.returncode == 0, result.stdout + result.stderr
    data = by_kind["ConfigMap"]["data"]
    assert data["ALLOWED_BUCKETS"]
    assert "ALLOWED_TOPIC_ARNS" in data
    [trigger] = by_kind["ScaledObject"]["spec"]["triggers"]
    assert trigger["metadata"]["queueURL"] == data["QUEUE_URL"]
    assert trigger["metadata"]["awsRegion"] == data["AWS_REGION"]
    role = by_kind["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.startswith("arn:aws:iam::")
    assert role != manifests()["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert by_kind["Namespace"]["metadata"]["name"] == "photo-ingest"
    assert by_kind["Deployment"]["metadata"]["namespace"] == "photo-ingest"


def test_replicas_spread_over_zones_with_a_priority_and_a_network_policy() -> None:
    """Zones first (then nodes), without blocking a one-zone cluster; the PriorityClass the pods name never
    preempts; the NetworkPolicy selects the worker's pods, admits nothing in, and lets out only DNS and 443."""
    pod = pod_spec()
    zone, host = pod["topologySpreadConstraints"]
    assert (zone["topologyKey"], host["topologyKey"]) == ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    labels = pod_labels()
    for spread in (zone, host):
        assert spread["maxSkew"] == 1
        assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
        assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
    priority = manifests()["PriorityClass"]
    assert pod["priorityClassName"] == priority["metadata"]["name"]
    assert (priority["preemptionPolicy"], priority["globalDefault"]) == ("Never", False)
    network = manifests()["NetworkPolicy"]["spec"]
    assert network["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(network["policyTypes"]) == {"Ingress", "Egress"}
    assert network["ingress"] == []
    ports = {(port["protocol"], port["port"]) for rule in network["egress"] for port in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}
    [dns] = [rule for rule in network["egress"] if "to" in rule]
    assert {port["port"] for port in dns["ports"]} == {53}  # only DNS goes to the cluster; 443 goes out


def pod_labels() -> dict[str, str]:
    return dict(manifests()["Deployment"]["spec"]["template"]["metadata"]["labels"])


def test_kubernetes_validate_strict_rejects_a_misspelt_field(tmp_path: Path) -> None:
    """The control for the test above: one misspelt field in the Deployment fails the validation."""
    deployment = manifests()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    misspelt = tmp_path / "deployment.yaml"
    misspelt.write_text(yaml.safe_dump(deployment))

    result = kubernetes_validate(misspelt)

    assert result.returncode == 1
    assert "readOnlyRootFilesytem" in result.stdout + result.stderr


def test_the_keda_manifests_match_the_models_of_the_pinned_keda_release() -> None:
    """ScaledObject and TriggerAuthentication validate against cloudcoil's models generated from KEDA 2.16's CRDs,
    with no field the CRD lacks; the trigger names only parameters of the aws-sqs-queue scaler."""
    assert metadata.version("cloudcoil.models.keda").startswith(f"{KEDA_VERSION}.")
    for kind in KEDA_MODELS:
        document = manifests()[kind]
        assert document["apiVersion"] == "keda.sh/v1alpha1"
        assert keda_round_trip(document) == document
    assert sqs_trigger()["type"] == "aws-sqs-queue"
    assert set(sqs_trigger()["metadata"]) <= SQS_SCALER_PARAMETERS


def test_the_keda_check_rejects_a_misspelt_field() -> None:
    """The control for the test above: a misspelt ScaledObject field, or a number where the trigger takes a
    string, does not survive the models."""
    scaled_object = manifests()["ScaledObject"]
    scaled_object["spec"]["maxReplicaCounts"] = 5
    assert keda_round_trip(scaled_object) != scaled_object

    scaled_object = manifests()["ScaledObject"]
    scaled_object["spec"]["triggers"][0]["metadata"]["queueLength"] = 15000
    with pytest.raises(ValueError, match="queueLength"):
        keda_round_trip(scaled_object)


# ---------------------------------------------------------------- the worker's contract


def test_the_grace_period_outlasts_the_drain() -> None:
    """SIGKILL comes after terminationGracePeriodSeconds: it exceeds SHUTDOWN_TIMEOUT_SECONDS, the default and
    the ConfigMap's, by the time to release unfinished messages and a margin."""
    grace_s = pod_spec()["terminationGracePeriodSeconds"]
    default_s = Settings.model_fields["shutdown_timeout_seconds"].default
    configured_s = float(config_map().get("SHUTDOWN_TIMEOUT_SECONDS", default_s))

    assert grace_s >= default_s + GRACE_MARGIN_S
    assert grace_s >= configured_s + GRACE_MARGIN_S


def test_the_probes_run_photo_ingest_health() -> None:
    """Liveness (and the start-up probe) execute the liveness entry (`photo-ingest health`'s verdict, standard
    library only), which reads the heartbeat file only, in
    the image's working directory; no HTTP port, no AWS call."""
    container = worker_container()
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["exec"] == {"command": ["python", "-I", "-m", "service.ops.liveness"]}
        assert container[probe]["timeoutSeconds"] >= 5
    assert "readinessProbe" not in container  # nothing routes traffic to the worker
    assert container.get("args", ["run"]) == ["run"]  # the image's CMD
    assert "command" not in container  # the image's ENTRYPOINT, photo-ingest, unchanged


def test_the_pod_runs_non_root_read_only_without_privileges() -> None:
    """runAsNonRoot as the image's 10001:10001, read-only root with an emptyDir on /tmp (where HEALTH_FILE is),
    no privilege escalation, every capability dropped, RuntimeDefault seccomp."""
    pod, container = pod_spec()["securityContext"], worker_container()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert (pod["runAsUser"], pod["runAsGroup"]) == (10001, 10001)
    assert "USER 10001:10001" in (ROOT / "Dockerfile").read_text().splitlines()
    assert pod["seccompProfile"] == container["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in container
    [mount] = worker_container()["volumeMounts"]
    [volume] = pod_spec()["volumes"]
    assert (mount["mountPath"], mount["name"]) == ("/tmp", volume["name"])
    assert "emptyDir" in volume
    assert config_map()["HEALTH_FILE"].startswith("/tmp/")


def test_resources_follow_the_benchmark() -> None:
    """At most one CPU (one process saturates one vCPU), a request from 250m, and memory above the soak's peak
    RSS with headroom in the limit."""
    resources = worker_container()["resources"]
    assert 0.25 <= cpu_cores(resources["requests"]["cpu"]) <= cpu_cores(resources["limits"]["cpu"]) == 1
    assert mebibytes(resources["requests"]["memory"]) >= SOAK_PEAK_RSS_MIB
    assert mebibytes(resources["limits"]["memory"]) >= 2 * SOAK_PEAK_RSS_MIB


def test_configmap_keys_are_settings_and_its_values_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every ConfigMap key is a setting's variable or an AWS SDK variable, the required QUEUE_URL is there, and
    the values load as the worker's Settings, from the environment as envFrom gives them."""
    data = config_map()
    assert set(data) <= {name.upper() for name in Settings.model_fields} | SDK_VARIABLES
    assert "QUEUE_URL" in data
    assert all(isinstance(value, str) for value in data.values())  # a ConfigMap holds strings only
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in data.items():
        monkeypatch.setenv(name, value)

    settings = Settings()  # type: ignore[call-arg]  # from the environment, as in the pod

    assert settings.queue_url == data["QUEUE_URL"]
    assert settings.metrics_namespace == "PhotoIngest"


def test_keda_watches_the_queue_the_worker_reads() -> None:
    """The trigger's queueURL and awsRegion are the ConfigMap's QUEUE_URL and AWS_REGION; the scaler counts
    messages in flight too."""
    trigger = sqs_trigger()["metadata"]
    assert trigger["queueURL"] == config_map()["QUEUE_URL"]
    assert trigger["awsRegion"] == config_map()["AWS_REGION"]
    assert trigger["scaleOnInFlight"] == "true"
    spec = manifests()["ScaledObject"]["spec"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


def test_queue_length_is_the_arithmetic_in_its_comment() -> None:
    """queueLength = the replica's requested CPU x messages per second per vCPU x the target drain time."""
    requested = cpu_cores(worker_container()["resources"]["requests"]["cpu"])
    assert int(sqs_trigger()["metadata"]["queueLength"]) == requested * MESSAGES_PER_VCPU_S * DRAIN_TARGET_S
    comment = (K8S / "scaledobject.yaml").read_text()
    assert f"target: a backlog KEDA sees is drained within {DRAIN_TARGET_S} s" in comment


def test_keda_authenticates_with_aws_pod_identity_and_its_own_role() -> None:
    """podIdentity provider aws with a roleArn (identityOwner left out: the two exclude each other), a role other
    than the worker's, allowed only to read the queue's attributes."""
    identity = manifests()["TriggerAuthentication"]["spec"]["podIdentity"]
    assert identity["provider"] == "aws"
    assert "identityOwner" not in identity
    worker_role = manifests()["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert identity["roleArn"].startswith("arn:aws:iam::")
    assert worker_role.startswith("arn:aws:iam::")
    assert identity["roleArn"] != worker_role
    [statement] = policy("scaler-policy.json")
    assert as_list(statement["Action"]) == ["sqs:GetQueueAttributes"]
    assert statement["Resource"] == queue_arn(config_map()["QUEUE_URL"])


# ---------------------------------------------------------------- IAM


def queue_arn(url: str) -> str:
    """arn:aws:sqs:<region>:<account>:<name> of https://sqs.<region>.amazonaws.com/<account>/<name>."""
    host, account, name = url.removeprefix("https://").split("/")
    return f"arn:aws:sqs:{host.split('.')[1]}:{account}:{name}"


def ecs_task_role_actions() -> set[str]:
    decoded, problems = decode(str(ROOT / "config" / "cloudformation.yaml"))  # understands !Ref, !GetAtt, ...
    assert not problems, problems
    assert decoded is not None
    role = decoded["Resources"]["TaskRole"]["Properties"]
    return {
        action
        for inline in role["Policies"]
        for statement in inline["PolicyDocument"]["Statement"]
        if "Fn::If" not in statement  # optional grants (VerifyObjects=true) are off by default, as in config/k8s
        for action in as_list(statement["Action"])
    }


def test_the_irsa_policy_grants_what_the_ecs_task_role_grants() -> None:
    """config/k8s/iam/worker-policy.json allows the ECS task role's seven actions, no more, each on the queue,
    dead-letter queue or table that the ConfigMap names."""
    granted: dict[str, str] = {}
    for statement in policy("worker-policy.json"):
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            granted[action] = statement["Resource"]
    assert set(granted) == ecs_task_role_actions()
    assert len(granted) == 7

    data = config_map()
    queue, dead_letter_queue = queue_arn(data["QUEUE_URL"]), queue_arn(data["DEAD_LETTER_QUEUE_URL"])
    table = f"arn:aws:dynamodb:{data['AWS_REGION']}:{queue.split(':')[4]}:table/{data['PHOTOS_TABLE']}"
    expected = {"sqs:SendMessage": dead_letter_queue, "dynamodb:PutItem": table, "dynamodb:DescribeTable": table}
    for action, resource in granted.items():
        assert resource == expected.get(action, queue), action


@pytest.mark.parametrize(
    ("trust_policy", "service_account"),
    [("worker-trust-policy.json", "photo-ingest:photo-ingest"), ("scaler-trust-policy.json", "keda:keda-operator")],
)
def test_each_role_trusts_only_its_service_account_through_the_cluster_oidc_provider(
    trust_policy: str, service_account: str
) -> None:
    """The worker's role trusts the worker's service account in the kustomization's namespace; the scaler's role
    trusts KEDA's operator. Both by AssumeRoleWithWebIdentity from the cluster's OIDC provider, for STS."""
    if service_account.startswith("photo-ingest:"):
        namespace, name = kustomization()["namespace"], manifests()["ServiceAccount"]["metadata"]["name"]
        assert service_account == f"{namespace}:{name}"
    [statement] = policy(trust_policy)
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    provider = statement["Principal"]["Federated"].split(":oidc-provider/")[1]
    assert statement["Condition"]["StringEquals"] == {
        f"{provider}:sub": f"system:serviceaccount:{service_account}",
        f"{provider}:aud": "sts.amazonaws.com",
    }
