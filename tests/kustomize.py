"""A small kustomize, enough for config/k8s (kustomize itself is not installable here): `resources` (files and
directories with a kustomization), `namespace`, `labels` (metadata only), `patches` as strategic merges of whole
fields (maps merge, lists are replaced) matched by kind and name, and `images`. Anything else in a kustomization
fails the render, so a new feature cannot be silently ignored by the tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "patches", "images"}
CLUSTER_SCOPED = {"Namespace", "PriorityClass", "ClusterRole", "ClusterRoleBinding"}


def kustomization(directory: Path) -> dict[str, Any]:
    found = dict(yaml.safe_load((directory / "kustomization.yaml").read_text()))
    assert set(found) <= SUPPORTED, f"{directory}: this renderer does not know {set(found) - SUPPORTED}"
    return found


def render(directory: Path) -> list[dict[str, Any]]:
    """The documents `kubectl kustomize directory` would print, for the features above."""
    spec = kustomization(directory)
    documents: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        documents += render(path) if path.is_dir() else list(yaml.safe_load_all(path.read_text()))
    for patch in spec.get("patches", []):
        _patch(documents, dict(yaml.safe_load((directory / patch["path"]).read_text())))
    for document in documents:
        metadata = document.setdefault("metadata", {})
        if "namespace" in spec and document["kind"] not in CLUSTER_SCOPED:
            metadata["namespace"] = spec["namespace"]
        for labels in spec.get("labels", []):
            metadata.setdefault("labels", {}).update(labels["pairs"])
        for image in spec.get("images", []):
            _set_image(document, image)
    return documents


def merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(patch)


def _patch(documents: list[dict[str, Any]], patch: dict[str, Any]) -> None:
    key = (patch["kind"], patch["metadata"]["name"])
    [index] = [i for i, d in enumerate(documents) if (d["kind"], d["metadata"]["name"]) == key]
    documents[index] = merge(documents[index], patch)


def _set_image(document: dict[str, Any], image: dict[str, str]) -> None:
    pod = document.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        if name == image["name"]:
            container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
