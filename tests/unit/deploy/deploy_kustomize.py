"""A small kustomize renderer for the subset k8s/ uses, so `make test` needs no binary.

Supported kustomization fields: resources (files and directories), namespace, patches
(strategic-merge patches from `path` or inline `patch`, matched on kind and name),
images (newName / newTag), replicas, configMapGenerator (files, literals, options.labels)
with generatorOptions.disableNameSuffixHash. Anything else raises, so a manifest never
relies on a feature this renderer silently skips. When `kubectl` is installed, the tests
also compare this output with `kubectl kustomize`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "patches",
    "images",
    "replicas",
    "configMapGenerator",
    "generatorOptions",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
}
# Strategic-merge list keys of the built-in types we patch (Kubernetes' patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not support, or is wrong."""


def load_documents(path: Path) -> list[Doc]:
    """The non-empty YAML documents of a file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _builtin(doc: Doc) -> bool:
    """True for Kubernetes' own types (strategic merge); CRDs get JSON-merge semantics."""
    group = str(doc.get("apiVersion", "")).rpartition("/")[0]
    return group == "" or "." not in group or group.endswith(".k8s.io")


def merge(base: Any, patch: Any, *, strategic: bool, key: str | None = None) -> Any:
    """Strategic merge of `patch` into `base` (lists of built-in types merge by their key)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = merge(out[k], v, strategic=strategic, key=k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    merge_key = MERGE_KEYS.get(key or "") if strategic else None
    if (
        merge_key
        and isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and merge_key in i for i in [*base, *patch])
    ):
        out_list = [copy.deepcopy(i) for i in base]
        for item in patch:
            for n, existing in enumerate(out_list):
                if existing[merge_key] == item[merge_key]:
                    out_list[n] = merge(existing, item, strategic=strategic, key=key)
                    break
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def _ident(doc: Doc) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def _apply_patch(docs: list[Doc], patch: Doc) -> None:
    for n, doc in enumerate(docs):
        if _ident(doc) == _ident(patch):
            docs[n] = merge(doc, patch, strategic=_builtin(doc))
            return
    raise KustomizeError(f"patch target {_ident(patch)} not found")


def _split_image(image: str) -> tuple[str, str | None]:
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, None
    return name, tag


def _set_images(docs: list[Doc], images: list[Doc]) -> None:
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
            name, tag = _split_image(container["image"])
            for rule in images:
                if rule["name"] == name:
                    new_name = rule.get("newName", name)
                    new_tag = rule.get("newTag", tag)
                    container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def _generate_config_maps(root: Path, kust: Doc) -> list[Doc]:
    options = kust.get("generatorOptions", {})
    if not options.get("disableNameSuffixHash"):
        raise KustomizeError("configMapGenerator needs generatorOptions.disableNameSuffixHash")
    result = []
    for gen in kust.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for entry in gen.get("files", []):
            key, _, rel = entry.rpartition("=")
            path = root / rel
            data[key or path.name] = path.read_text()
        for literal in gen.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        labels = {**options.get("labels", {}), **gen.get("options", {}).get("labels", {})}
        meta: Doc = {"name": gen["name"]}
        if labels:
            meta["labels"] = labels
        result.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
    return result


def render(root: Path) -> list[Doc]:
    """Render the kustomization in directory `root`."""
    kust = yaml.safe_load((root / "kustomization.yaml").read_text())
    unknown = set(kust) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{root}: unsupported kustomization fields {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in kust.get("resources", []):
        path = (root / entry).resolve()
        docs.extend(render(path) if path.is_dir() else load_documents(path))
    docs.extend(_generate_config_maps(root, kust) if "configMapGenerator" in kust else [])
    for patch in kust.get("patches", []):
        if "target" in patch:
            raise KustomizeError("patch targets (JSON 6902) are not supported")
        patch_docs = (
            load_documents(root / patch["path"])
            if "path" in patch
            else [d for d in yaml.safe_load_all(patch["patch"]) if d]
        )
        for patch_doc in patch_docs:
            _apply_patch(docs, patch_doc)
    _set_images(docs, kust.get("images", []))
    for rule in kust.get("replicas", []):
        targets = [
            d
            for d in docs
            if d["metadata"]["name"] == rule["name"]
            and d["kind"] in {"Deployment", "StatefulSet", "ReplicaSet"}
        ]
        if not targets:
            raise KustomizeError(f"replicas target {rule['name']} not found")
        for d in targets:
            d["spec"]["replicas"] = rule["count"]
    if "namespace" in kust:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kust["namespace"]
    names = [_ident(d) for d in docs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise KustomizeError(f"{root}: duplicate resources {sorted(duplicates)}")
    return docs
