"""A Ray cluster of separate processes on this machine, as a Slurm job starts one across nodes: a head (``ray start
--head``) and worker nodes (``ray start --address``), each with its own raylet and object store. Jobs reach it through
``RAY_ADDRESS``. For the multi-node tests and the throughput benchmark; ``slurm/curate_ray.sbatch`` runs the same
commands on real nodes.

Every node is one ``ray start --block`` process group that this object started; ``stop`` and ``kill`` end exactly
those processes and their descendants (by process id, never by name: ``ray stop`` would end every Ray on the
machine, other users' included). Ports are chosen free, so several clusters can share a machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from oc_common.errors import EnvironmentProblem

START_TIMEOUT_S = 180.0  # a node starts in 3-30 s on an idle 2-core box; allow for a loaded one
STOP_GRACE_S = 5.0
NODE_TAG = "oc_node_"  # a custom resource on every node names it (so tests can tell which Ray node is which)
# Find a dead node within seconds rather than Ray's default ~30 s (system config read from the environment).
NODE_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_health_check_period_ms": "1000",
            "RAY_health_check_timeout_ms": "1000", "RAY_health_check_failure_threshold": "3"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RayNode:
    name: str
    process: subprocess.Popen
    log: Path
    cpus: int
    resources: dict[str, float] = field(default_factory=dict)
    killed: bool = False

    def tree(self) -> list[psutil.Process]:
        """This node's processes: its ``ray start``, the raylet and agents (and the GCS on the head), workers."""
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


class LocalRayCluster:
    """``start()`` a head, ``add_worker()`` nodes, ``address`` for RAY_ADDRESS, ``kill(node)`` one, ``stop()`` all.

    The head takes ``head_cpus`` CPUs (0: it only coordinates, as on a cluster whose head is busy with the driver).
    ``object_store_mb`` per node, spilled objects go to ``root/spill``; logs under ``root``.
    """

    def __init__(self, root: Path, *, head_cpus: int = 1, object_store_mb: int = 100, env: dict | None = None):
        self.root = Path(root)
        self.head_cpus = head_cpus
        self.object_store_mb = object_store_mb
        self.env = {**os.environ, **NODE_ENV, **(env or {})}
        self.env.pop("RAY_ADDRESS", None)
        self.port = 0
        self.nodes: list[RayNode] = []
        self._seen: dict[int, psutil.Process] = {}  # every process of ours ever seen (stop ends the leftovers)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _ray_start(self, name: str, args: list[str], cpus: int, resources: dict[str, float]) -> RayNode:
        log = self.root / f"{name}.log"
        args = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--node-ip-address=127.0.0.1",
                f"--num-cpus={cpus}", "--num-gpus=0", f"--object-store-memory={self.object_store_mb * 2**20}",
                "--disable-usage-stats", f"--resources={json.dumps({**resources, NODE_TAG + name: 1})}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
                f"--metrics-export-port={free_port()}", *args]
        with open(log, "ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.root,
                                    start_new_session=True)
        node = RayNode(name, proc, log, cpus, resources)
        self.nodes.append(node)
        return node

    def start(self) -> LocalRayCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        spill = self.root / "spill"
        spill.mkdir(exist_ok=True)
        self._ray_start("head", ["--head", f"--port={self.port}", f"--ray-client-server-port={free_port()}",
                                 "--include-dashboard=false", f"--dashboard-port={free_port()}",
                                 f"--temp-dir={self.root / 'ray'}",
                                 f"--object-spilling-directory={spill}"], self.head_cpus, {})
        self.wait_for_nodes()
        return self

    def add_worker(self, cpus: int = 1, resources: dict[str, float] | None = None) -> RayNode:
        """Start one more node (its own raylet and object store) and wait until the head lists it alive."""
        node = self._ray_start(f"worker{len(self.nodes)}", [f"--address={self.address}"], cpus, resources or {})
        self.wait_for_nodes()
        return node

    def alive_nodes(self) -> dict[str, str]:
        """Our node name -> Ray node id, for the nodes the head lists alive (asked of the GCS directly: this process
        does not become a driver of the cluster)."""
        from ray._raylet import GcsClient

        infos = GcsClient(address=self.address).get_all_node_info(timeout=10)
        out = {}
        for node_id, info in infos.items():
            names = [k[len(NODE_TAG):] for k in info.resources_total if k.startswith(NODE_TAG)]
            if info.state == 0 and names:  # GcsNodeInfo.ALIVE
                out[names[0]] = node_id.hex()
        return out

    def wait_for_nodes(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until every node started and not killed is alive in the head's list."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._remember()
            for node in self.nodes:
                if node.process.poll() is not None and not node.killed:
                    raise EnvironmentProblem(f"Ray node {node.name} exited ({node.log}): {self._tail(node)}")
            want = {n.name for n in self.nodes if not n.killed}
            try:
                alive = set(self.alive_nodes())
            except Exception:  # noqa: BLE001 - the GCS is not up yet (connection refused, timeout)
                alive = set()
            if want <= alive:
                return
            if time.monotonic() > deadline:
                raise EnvironmentProblem(f"Ray nodes {sorted(want - alive)} did not join the cluster at "
                                         f"{self.address} in {timeout_s:.0f} s (logs in {self.root})")
            time.sleep(0.5)

    @staticmethod
    def _tail(node: RayNode) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(node.log.read_text(errors="replace").strip().splitlines()[-3:])
        return ""

    def _remember(self) -> None:
        for node in self.nodes:
            for p in node.tree():
                self._seen.setdefault(p.pid, p)

    def kill(self, node: RayNode) -> None:
        """SIGKILL every process of one node at once, as a lost machine would (no goodbye to the head)."""
        node.killed = True
        procs = node.tree()
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(procs, timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.process.wait(10)

    def stop(self) -> None:
        """SIGTERM each node's ``ray start`` (it stops its raylet and agents), a few seconds' grace (a worker node
        would otherwise drain for 30 s), then SIGKILL whatever of ours is left, and wait for all of it."""
        self._remember()
        for node in reversed(self.nodes):
            if node.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for node in reversed(self.nodes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(max(0.1, deadline - time.monotonic()))
        self._remember()
        left = [p for p in self._seen.values() if _alive(p)]
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(left, timeout=10)
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(10)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def alive_node_count(address: str) -> int:
    """Nodes the head at ``address`` lists alive (asked of its GCS; the caller does not become a driver)."""
    from ray._raylet import GcsClient

    infos = GcsClient(address=address).get_all_node_info(timeout=10)
    return sum(1 for info in infos.values() if info.state == 0)  # GcsNodeInfo.ALIVE


def wait_for_cluster(address: str, nodes: int, timeout_s: float = START_TIMEOUT_S) -> int:
    """Until ``nodes`` nodes are alive at ``address`` (slurm/curate_ray.sbatch, before it sends the job); returns
    how many are."""
    deadline = time.monotonic() + timeout_s
    alive = 0
    while True:
        with contextlib.suppress(Exception):  # the GCS is not up yet (connection refused, timeout)
            alive = alive_node_count(address)
        if alive >= nodes:
            return alive
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"{alive} of {nodes} Ray nodes joined the cluster at {address} in "
                                     f"{timeout_s:.0f} s (each node's `ray start` log says why)")
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    """``python -m oc_synth.pipeline.ray_cluster wait ADDRESS NODES [TIMEOUT_S]``: exit 0 once NODES nodes are
    alive, 2 (saying how many joined) after TIMEOUT_S seconds."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (3, 4) or args[0] != "wait":
        print("usage: python -m oc_synth.pipeline.ray_cluster wait ADDRESS NODES [TIMEOUT_S]", file=sys.stderr)
        return 2
    try:
        alive = wait_for_cluster(args[1], int(args[2]), float(args[3]) if len(args) == 4 else START_TIMEOUT_S)
    except EnvironmentProblem as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{alive} Ray nodes alive at {args[1]}")
    return 0


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


if __name__ == "__main__":
    sys.exit(main())
