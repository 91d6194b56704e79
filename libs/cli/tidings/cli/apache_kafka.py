"""Apache Kafka without Docker: the broker's jars from Maven Central, run as a KRaft node.

`make run`, the test suite, the chaos drills and the benchmarks use the broker production
runs (compose: `apache/kafka`, Kubernetes: Strimzi) when Java is on the machine. The jars of
`org.apache.kafka:kafka_2.13` (pinned: KAFKA_VERSION) and their runtime dependencies are
fetched once per machine with Maven into ~/.cache/tidings/kafka/<version> (TIDINGS_CACHE_DIR
moves it); each broker then formats its own KRaft log folder and runs as one process that is
both controller and broker, with the settings compose gives its broker.

Without Java 17+ and Maven the callers fall back to Tansu and say why (`unavailable()`).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tidings.cli.infra import InfraError

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
# Kafka logs through SLF4J 1.7; this binding sends it to the log4j2 that Kafka ships.
_SLF4J_BINDING = ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3")
_MIN_JAVA = 17
# The broker settings compose.yaml gives `apache/kafka` (single node, KRaft).
BROKER_SETTINGS: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "inter.broker.listener.name": "PLAINTEXT",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
    # Lets the responders' 3 s session (RESPONDER_SESSION_TIMEOUT_MS as deployed) join: a
    # responder killed with kill -9 is replaced within 5 s (tests/bench/bench_takeover.py).
    "group.min.session.timeout.ms": "2000",
}
_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


def cache_dir() -> Path:
    """Where the broker's jars are kept (one folder per version)."""
    root = os.environ.get("TIDINGS_CACHE_DIR") or str(Path.home() / ".cache" / "tidings")
    return Path(root) / "kafka" / KAFKA_VERSION


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run(  # noqa: S603 (argv built here, no shell)
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def unavailable() -> str | None:
    """Why Apache Kafka cannot run here (no Java 17+, or no Maven for the first fetch), or None."""
    java = shutil.which("java")
    if java is None:
        return "no `java` on PATH (Apache Kafka needs Java 17+)"
    major = _java_major(java)
    if major is None or major < _MIN_JAVA:
        return f"Java {major or '?'} found; Apache Kafka {KAFKA_VERSION} needs Java {_MIN_JAVA}+"
    if not is_fetched() and shutil.which("mvn") is None:
        return "no `mvn` on PATH to fetch the Apache Kafka jars from Maven Central"
    return None


def is_fetched() -> bool:
    return (cache_dir() / ".complete").is_file()


def _pom() -> str:
    group, artifact, version = _SLF4J_BINDING
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.tidings</groupId>
  <artifactId>tidings-kafka-broker</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>{group}</groupId>
      <artifactId>{artifact}</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (another process fetching waits for it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch(say: Callable[[str], None] = print) -> Path:
    """The folder of the broker's jars, fetched from Maven Central on first use."""
    home = cache_dir()
    libs = home / "libs"
    if is_fetched():
        return libs
    with _locked(home / ".lock"):
        if is_fetched():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError("fetching Apache Kafka needs Maven (`mvn`) on PATH")
        say(
            f"Fetching Apache Kafka {KAFKA_VERSION} (kafka_{SCALA_VERSION} and its dependencies, "
            f"~44 MB) from Maven Central into {home}; once per machine"
        )
        started = time.monotonic()
        (home / "pom.xml").write_text(_pom())
        staging = home / f"libs.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        done = subprocess.run(  # noqa: S603 (argv built here, no shell)
            [
                mvn,
                "-B",
                "--no-transfer-progress",
                "-f",
                str(home / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join(done.stdout.splitlines()[-15:])
            raise InfraError(f"Maven could not fetch Apache Kafka {KAFKA_VERSION}:\n{tail}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        (home / ".complete").touch()
        size = sum(p.stat().st_size for p in libs.iterdir()) / 1e6
        say(
            f"Apache Kafka {KAFKA_VERSION} fetched: {len(list(libs.iterdir()))} jars, "
            f"{size:.0f} MB in {time.monotonic() - started:.0f}s"
        )
    return libs


# What Kafka's own start script (`kafka-run-class.sh`, KAFKA_JVM_PERFORMANCE_OPTS) gives
# the broker's JVM, as in compose's `apache/kafka` image: above all a 20 ms pause target for
# the garbage collector (G1's default is 200 ms).
JVM_PERFORMANCE_OPTIONS = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
)


@dataclass(frozen=True)
class KafkaNode:
    """One single-node KRaft broker on 127.0.0.1 whose log lives in `data_dir`.

    The log survives a restart of the process (as in production); `prepare()` formats it
    only the first time.
    """

    port: int
    controller_port: int
    data_dir: Path
    host: str = "127.0.0.1"
    heap_mb: int = 512
    extra_settings: tuple[tuple[str, str], ...] = ()
    jvm_options: tuple[str, ...] = JVM_PERFORMANCE_OPTIONS

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    def properties(self) -> dict[str, str]:
        settings = {
            **BROKER_SETTINGS,
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "log.dirs": str(self.data_dir / "log"),
        }
        settings.update(dict(self.extra_settings))
        return settings

    def _java(self, libs: Path, main: str, *args: str, heap_mb: int) -> list[str]:
        return [
            shutil.which("java") or "java",
            f"-Xms{min(128, heap_mb)}m",
            f"-Xmx{heap_mb}m",
            *self.jvm_options,
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def prepare(self, say: Callable[[str], None] = print) -> list[str]:
        """Fetch the jars if needed, write the configuration, format a new log; the command."""
        libs = fetch(say)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "".join(f"{key}={value}\n" for key, value in self.properties().items())
        )
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2)
        if not (self.data_dir / "log" / "meta.properties").is_file():
            formatted = subprocess.run(  # noqa: S603 (argv built here, no shell)
                self._java(
                    libs,
                    "kafka.tools.StorageTool",
                    "format",
                    "--cluster-id",
                    new_cluster_id(),
                    "--config",
                    str(self.config_path),
                    "--ignore-formatted",
                    heap_mb=256,
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if formatted.returncode != 0:
                raise InfraError(
                    f"could not format the Kafka log in {self.data_dir}:\n"
                    f"{formatted.stdout}{formatted.stderr}"
                )
        return self._java(libs, "kafka.Kafka", str(self.config_path), heap_mb=self.heap_mb)


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as `random-uuid`).

    Never one that starts with "-" (1 in 64 would): the storage tool would read it as an
    option and fail to format (Kafka's own Uuid.randomUuid() draws again too).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def main() -> int:
    """`python -m tidings.cli.apache_kafka`: fetch the jars now (`make install` does)."""
    reason = unavailable()
    if reason:
        print(f"Apache Kafka not fetched: {reason}", file=sys.stderr)
        return 0
    fetch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
