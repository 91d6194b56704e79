"""JSON Schemas of the operators' custom resources, from their vendored CRDs (crds/).

A CRD's `openAPIV3Schema` is OpenAPI 3.0, close to JSON Schema; it becomes a strict JSON
Schema the way kubeconform's openapi2jsonschema makes one: `nullable` admits null,
`x-kubernetes-int-or-string` admits both, and an object that declares its properties accepts
no other key unless the CRD says it keeps unknown fields (the API server would prune such a
key silently: a typo in a manifest would be lost, not refused).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).parent / "crds"
Schema = dict[str, Any]


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    pattern = out.get("pattern")
    if isinstance(pattern, str) and "(?i)" in pattern:
        # Go's RE2 takes an inline flag anywhere; Python only at the start.
        out["pattern"] = "(?i)" + pattern.replace("(?i)", "")
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _metadata(schema: Schema) -> Schema:
    # CRDs leave metadata open (`type: object`); the API server checks it as ObjectMeta.
    # Some (Istio's) do not declare apiVersion and kind at all.
    properties = dict(schema.get("properties", {}))
    properties["metadata"] = {"type": "object"}
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    return {**schema, "properties": properties, "required": ["apiVersion", "kind", "metadata"]}


@cache
def crd_schemas() -> dict[tuple[str, str], Schema]:
    """(apiVersion, kind) -> strict JSON Schema, for every served version of every CRD."""
    schemas: dict[tuple[str, str], Schema] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True) and not version.get("deprecated", False):
                    schema = _strict(version["schema"]["openAPIV3Schema"])
                    schemas[(f"{group}/{version['name']}", kind)] = _metadata(schema)
    return schemas


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """A checked, reusable validator for one kind (the Strimzi schemas are large)."""
    schema = crd_schemas()[(api_version, kind)]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def crd_versions() -> dict[str, str]:
    """Vendored CRD file -> the release it came from (the header each file starts with)."""
    return {
        path.stem: path.read_text().splitlines()[0].removeprefix("# ")
        for path in sorted(CRDS.glob("*.yaml"))
    }
