"""An emulated Kubernetes API on loopback, to try (and test) the cluster fixtures without one.

The API server is kmock's Kubernetes emulator (``pip install kmock``), a real HTTP server that
stores objects; the official client talks to it through an ordinary kubeconfig. What a cluster
would do by itself is done here through the API, as its controllers would: an "operator" sets
a SeldonDeployment's status, a "kubelet" marks new pods Running, a Core 2 "scheduler" takes
new Models, Pipelines and Experiments through ``ModelProgressing`` to ``Ready`` and opens their
routes on a stand-in mesh (`mesh.StandInMesh`, routing only by ``Seldon-Model``), which a
``seldon-mesh`` Service leads to. Exec and port-forward are not
emulated (they ride websockets); pair this with `loopback.LoopbackTransport`. The emulator
stores objects as sent: give metadata.namespace in what you create (a real API server fills
it in), or the kubelet cannot find the pod again.

Try it::

    python -m tests.emulated_cluster --kubeconfig /tmp/emulated.kubeconfig \\
        --local-mlserver
    pytest --seldon-kubeconfig /tmp/emulated.kubeconfig --seldon-deployment iris ...
    pytest --seldon-kubeconfig /tmp/emulated.kubeconfig --seldon-ingress MESH_URL \
        --seldon-deployment model/iris ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from pytest_seldon_load.cluster.resources import KINDS
from pytest_seldon_load.cluster.resources.core2 import Core2Kind
from pytest_seldon_load.cluster.resources.sdep import GROUP, PLURAL, VERSION
from pytest_seldon_load.durations import parse_duration_s

from .mesh import StandInMesh

KUBELET_TICK_S = 0.05
SCHEDULER_TICK_S = 0.1
CORE2 = {kind.kind: kind for kind in KINDS.values() if isinstance(kind, Core2Kind)}
"""Core 2's kinds by API kind (Model, Pipeline, Experiment)."""
CORE2_STATES = ("ready", "progressing", "failed")


def core2_conditions(kind: str, state: str, text: str = "") -> list[dict[str, Any]]:
    """Status conditions as Core 2 writes them for a `kind` that is `state`.

    Models put the state in ``message`` and the text in ``reason``; Pipelines and Experiments
    the reverse. A failed Model's state is ``ScheduleFailed`` when `text` says "schedule".
    """
    if state not in CORE2_STATES:
        raise ValueError(f"state: expected one of {', '.join(CORE2_STATES)}, got {state!r}")
    ready = state == "ready"
    flag = "True" if ready else "False"
    if kind == "Model":
        word = {
            "ready": "ModelAvailable",
            "progressing": "ModelProgressing",
            "failed": "ScheduleFailed" if "schedule" in text.lower() else "ModelFailed",
        }[state]
        first = {"type": "ModelReady", "status": flag, "message": word, "reason": text or word}
    elif kind == "Pipeline":
        word = {"ready": "PipelineReady", "progressing": "PipelineCreating"}.get(
            state, "PipelineFailed"
        )
        first = {"type": "PipelineReady", "status": flag, "reason": word, "message": text or word}
    elif kind == "Experiment":
        word = {"ready": "ExperimentReady", "progressing": "CandidatesNotReady"}.get(
            state, "ExperimentFailed"
        )
        first = {"type": "ExperimentReady", "status": flag, "reason": word, "message": text or word}
    else:
        raise ValueError(f"kind: expected one of {', '.join(CORE2)}, got {kind!r}")
    return [first, {"type": "Ready", "status": flag}]


RESOURCES = {
    f"{GROUP}/{VERSION}/{PLURAL}": "SeldonDeployment",
    **{f"{k.group}/{k.version}/{k.plural}": k.kind for k in CORE2.values()},
    "v1/pods": "Pod",
    "v1/services": "Service",
    "v1/secrets": "Secret",
    "v1/configmaps": "ConfigMap",
    "batch/v1/jobs": "Job",
}


class EmulatedKubernetes:
    """kmock's Kubernetes emulator serving on 127.0.0.1 from a background thread.

    `kubelet` is what becomes of new pods: "run" (Running and Ready after `pod_start_delay`),
    "image-pull-backoff" (Pending, waiting on an image that never comes), or None (untouched).
    """

    def __init__(
        self,
        *,
        kubelet: str | None = "run",
        pod_start_delay: float = 0.1,
        core2_ready_delay: float = 0.3,
    ) -> None:
        if kubelet not in (None, "run", "image-pull-backoff"):
            raise ValueError(
                f"kubelet: expected 'run', 'image-pull-backoff' or None, got {kubelet!r}"
            )
        self.kubelet = kubelet
        self.pod_start_delay = pod_start_delay
        self.core2_ready_delay = core2_ready_delay
        self.mesh: StandInMesh | None = None
        self._routes_lock = threading.Lock()
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._kubelet_thread: threading.Thread | None = None
        self._scheduler_thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._error: BaseException | None = None
        self._api: k8s.ApiClient | None = None
        self.pod_logs: dict[tuple[str, str], str] = {}
        """What ``GET .../pods/NAME/log`` answers, by (namespace, pod): a controller that runs
        pods (`jobs`) writes their output here."""

    # --- the server ---------------------------------------------------------------
    def start(self) -> EmulatedKubernetes:
        try:
            import kmock  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "the emulated cluster needs kmock: pip install 'pytest-seldon-load[dev]'"
            ) from None
        self._thread = threading.Thread(target=self._serve, name="emulated-k8s", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("the emulated Kubernetes API did not start within 15 s")
        if self._error is not None:
            raise self._error
        configuration = k8s.Configuration()
        configuration.host = self.url
        self._api = k8s.ApiClient(configuration)
        if self.kubelet:
            self._kubelet_thread = threading.Thread(
                target=self._kubelet_loop, name="emulated-kubelet", daemon=True
            )
            self._kubelet_thread.start()
        self._scheduler_thread = threading.Thread(
            target=self._scheduler_loop, name="emulated-seldon-scheduler", daemon=True
        )
        self._scheduler_thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        for thread in (self._kubelet_thread, self._scheduler_thread):
            if thread is not None:
                thread.join(5)
        if self.mesh is not None:
            self.mesh.stop()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        if self._api is not None:
            self._api.close()

    def __enter__(self) -> EmulatedKubernetes:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        import kmock
        from kmock import ResourceInfo

        loop = self._loop = asyncio.new_event_loop()

        async def main() -> None:
            self._stop = asyncio.Event()
            async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
                for resource, kind in RESOURCES.items():
                    emulator.resources[resource] = ResourceInfo(kind=kind, namespaced=True)
                logs = emulator[kmock.subresource("log")]
                logs << {"Content-Type": "text/plain; charset=utf-8"} << self._pod_log
                self.url = str(server.url).rstrip("/")
                self._ready.set()
                await self._stop.wait()

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported to the thread that started us
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    def _pod_log(self, request: Any) -> bytes:
        """A pod's log as plain text (bytes: kmock sends them as they are)."""
        return self.pod_logs.get((request.namespace, request.name), "").encode("utf-8")

    # --- clients ------------------------------------------------------------------
    @property
    def api(self) -> k8s.ApiClient:
        if self._api is None:
            raise RuntimeError("EmulatedKubernetes: start() it first")
        return self._api

    @property
    def core(self) -> Any:
        """The core API, typed loosely: its calls take plain dict bodies, as the client
        accepts, where its annotations name only the model classes."""
        return k8s.CoreV1Api(self.api)

    @property
    def custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api)

    def write_kubeconfig(
        self,
        path: str | Path,
        *,
        namespace: str = "default",
        token: str | None = None,
        context: str = "emulated",
    ) -> Path:
        """A kubeconfig whose one context points at this emulator."""
        user: dict[str, Any] = {"token": token} if token else {}
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": user}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": "emulated", "user": "tester", "namespace": namespace},
                }
            ],
            "current-context": context,
        }
        path = Path(path)
        path.write_text(json.dumps(document, indent=2), encoding="utf-8")
        return path

    # --- what a cluster's controllers would do, through the API --------------------
    def create_deployment(
        self,
        name: str,
        namespace: str = "default",
        *,
        protocol: str | None = "v2",
        model: str = "iris",
        state: str = "Creating",
        address_url: str | None = None,
        predictor: str = "default",
        service_port: int = 8000,
        description: str = "",
        conditions: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """A SeldonDeployment as Seldon Core v1 reports one (status set at once)."""
        spec: dict[str, Any] = {
            "predictors": [
                {"name": predictor, "graph": {"name": model, "implementation": "SKLEARN_SERVER"}}
            ]
        }
        if protocol is not None:
            spec["protocol"] = protocol
        service = f"{name}-{predictor}"
        status: dict[str, Any] = {
            "state": state,
            "serviceStatus": {
                service: {
                    "svcName": service,
                    "httpEndpoint": f"{service}.{namespace}:{service_port}",
                    "grpcEndpoint": f"{service}.{namespace}:5001",
                }
            },
        }
        if address_url:
            status["address"] = {"url": address_url}
        if description:
            status["description"] = description
        if conditions:
            status["conditions"] = [dict(c) for c in conditions]
        self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "SeldonDeployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
                "status": status,
            },
        )

    def set_deployment_status(self, name: str, namespace: str = "default", **status: Any) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}
        )

    def set_deployment_status_later(
        self, delay: float, name: str, namespace: str = "default", **status: Any
    ) -> threading.Thread:
        """Change the status after `delay` seconds, from another thread (an operator's pace)."""

        def later() -> None:
            if not self._halt.wait(delay):
                self.set_deployment_status(name, namespace, **status)

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        return thread

    # --- Core 2 ---------------------------------------------------------------------
    def create_core2(
        self,
        kind: str,
        name: str,
        namespace: str = "default",
        *,
        spec: Mapping[str, Any] | None = None,
        state: str | None = "ready",
        text: str = "",
    ) -> None:
        """A Model, Pipeline or Experiment; with `state` None, the scheduler takes it through
        ModelProgressing to Ready after `core2_ready_delay`."""
        resource = CORE2[kind]
        default_specs: dict[str, dict[str, Any]] = {
            "Model": {"storageUri": "gs://seldon-models/iris", "requirements": ["sklearn"]},
            "Pipeline": {"steps": [{"name": "iris"}], "output": {"steps": ["iris"]}},
            "Experiment": {"default": "iris", "candidates": [{"name": "iris", "weight": 100}]},
        }
        default_spec = default_specs[kind]
        body: dict[str, Any] = {
            "apiVersion": resource.api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": dict(spec) if spec is not None else default_spec,
        }
        if state is not None:
            body["status"] = {"conditions": core2_conditions(kind, state, text)}
        self.custom.create_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural, body
        )
        self._sync_routes()

    def set_core2_state(
        self, kind: str, name: str, namespace: str = "default", state: str = "ready", text: str = ""
    ) -> None:
        self._set_core2_conditions(
            CORE2[kind], namespace, name, core2_conditions(kind, state, text)
        )
        self._sync_routes()

    def _set_core2_conditions(
        self, resource: Core2Kind, namespace: str, name: str, conditions: list, **request: Any
    ) -> None:
        self.custom.patch_namespaced_custom_object_status(
            resource.group,
            resource.version,
            namespace,
            resource.plural,
            name,
            {"status": {"conditions": conditions}},
            **request,
        )

    def set_core2_state_later(
        self,
        delay: float,
        kind: str,
        name: str,
        namespace: str = "default",
        state: str = "ready",
        text: str = "",
    ) -> threading.Thread:
        """Change the state after `delay` seconds, from another thread (a scheduler's pace)."""

        def later() -> None:
            if not self._halt.wait(delay):
                self.set_core2_state(kind, name, namespace, state, text)

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        return thread

    def start_mesh(
        self, upstream: str, model: str = "iris", grpc_upstream: str | None = None
    ) -> StandInMesh:
        """The stand-in mesh, forwarding routed requests to `upstream`'s `model` (and gRPC
        calls to `grpc_upstream`, when given, on the same port)."""
        if self.mesh is None:
            self.mesh = StandInMesh(upstream, model, grpc_upstream).start()
            self._sync_routes()
        return self.mesh

    def create_mesh_service(
        self, namespace: str = "default", *, service: str = "seldon-mesh"
    ) -> str:
        """A ``seldon-mesh`` Service (port 80) whose pod's port is the stand-in mesh's port,
        as a LoopbackTransport reaches it; returns the pod's name."""
        if self.mesh is None:
            raise RuntimeError("create_mesh_service: start_mesh() first")
        return self.create_service_with_pod(
            service,
            namespace,
            port=80,
            target_port="http",
            container_port=self.mesh.port,
            labels={"app": service},
        )

    def _core2_objects(self) -> list[tuple[Core2Kind, Mapping[str, Any]]]:
        found: list[tuple[Core2Kind, Mapping[str, Any]]] = []
        for resource in CORE2.values():
            assert isinstance(resource, Core2Kind)
            listing = self.custom.list_cluster_custom_object(
                resource.group, resource.version, resource.plural, _request_timeout=5
            )
            items = listing.get("items", []) if isinstance(listing, Mapping) else []
            found.extend((resource, item) for item in items if isinstance(item, Mapping))
        return found

    def _sync_routes(self) -> None:
        """Open a mesh route for every Ready Core 2 resource, close the others."""
        if self.mesh is None:
            return
        with self._routes_lock:  # a listing older than another thread's must not win
            routes = set()
            for resource, item in self._core2_objects():
                conditions = (item.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                    routes.add(str(item["metadata"]["name"]) + resource.route_suffix)
            self.mesh.set_routes(routes)

    def _scheduler_loop(self) -> None:
        """New Core 2 resources (no status) go ModelProgressing, then Ready after
        `core2_ready_delay` and get their route, until stop(). Routes are only added here;
        `_sync_routes` (after each change made through this object) also removes them."""
        first_seen: dict[tuple[str, str, str], float] = {}
        while not self._halt.wait(SCHEDULER_TICK_S):
            try:
                objects = self._core2_objects()
            except Exception:  # the server is going away
                continue
            now = time.monotonic()
            for resource, item in objects:
                metadata = item.get("metadata") or {}
                namespace, name = metadata.get("namespace"), metadata.get("name")
                if not namespace or not name:
                    continue
                key = (resource.kind, namespace, name)
                conditions = (item.get("status") or {}).get("conditions")
                if key not in first_seen and conditions:
                    continue  # created with a status: the test steers it
                seen = first_seen.setdefault(key, now)
                state = "ready" if now - seen >= self.core2_ready_delay else "progressing"
                route = name + resource.route_suffix
                if conditions == core2_conditions(resource.kind, state):
                    if state == "ready" and self.mesh is not None:
                        self.mesh.add_route(route)
                    continue
                if state == "ready" and self.mesh is not None:
                    self.mesh.add_route(route)  # routed before it is seen Ready, as Core 2 does
                with contextlib.suppress(Exception):
                    conditions = core2_conditions(resource.kind, state)
                    self._set_core2_conditions(
                        resource, namespace, name, conditions, _request_timeout=5
                    )

    def create_service_with_pod(
        self,
        service: str,
        namespace: str = "default",
        *,
        port: int = 8000,
        target_port: int | str = "http",
        container_port: int = 9000,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """A Service and one pod behind it (left to the kubelet); returns the pod's name."""
        labels = dict(labels or {"seldon-app": service})
        pod = f"{service}-0"
        self.core.create_namespaced_service(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": service, "namespace": namespace},
                "spec": {
                    "selector": labels,
                    "ports": [{"name": "http", "port": port, "targetPort": target_port}],
                },
            },
        )
        self.core.create_namespaced_pod(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "namespace": namespace, "labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "seldon-container-engine",
                            "image": "seldonio/seldon-core-executor",
                            "ports": [{"name": "http", "containerPort": container_port}],
                        }
                    ]
                },
            },
        )
        return pod

    def pod_names(self, namespace: str = "default") -> list[str]:
        return sorted(p.metadata.name for p in self.core.list_namespaced_pod(namespace).items)

    def _kubelet_loop(self) -> None:
        """New pods (no status yet) get one after `pod_start_delay`, until stop()."""
        first_seen: dict[tuple[str, str], float] = {}
        while not self._halt.wait(KUBELET_TICK_S):
            try:
                pods = self.core.list_pod_for_all_namespaces(_request_timeout=5).items
            except Exception:  # the server is going away
                continue
            now = time.monotonic()
            for pod in pods:
                key = (pod.metadata.namespace, pod.metadata.name)
                if not pod.metadata.namespace or (pod.status is not None and pod.status.phase):
                    continue
                seen = first_seen.setdefault(key, now)
                if now - seen < self.pod_start_delay:
                    continue
                with contextlib.suppress(Exception):
                    self.core.patch_namespaced_pod_status(
                        pod.metadata.name,
                        pod.metadata.namespace,
                        {"status": self._pod_status()},
                        _request_timeout=5,
                    )

    def _pod_status(self) -> dict[str, Any]:
        if self.kubelet == "image-pull-backoff":
            return {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "iago",
                        "ready": False,
                        "restartCount": 0,
                        "image": "unknown",
                        "imageID": "",
                        "state": {
                            "waiting": {
                                "reason": "ImagePullBackOff",
                                "message": "Back-off pulling image",
                            }
                        },
                    }
                ],
            }
        return {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        }


def main(argv: Sequence[str] | None = None) -> int:
    """Serve an emulated cluster with SeldonDeployments until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.emulated_cluster",
        description="Serve an emulated Kubernetes API with Available SeldonDeployments on "
        "127.0.0.1 and write a kubeconfig for it, to try the cluster fixtures without a cluster.",
    )
    parser.add_argument(
        "--kubeconfig", required=True, metavar="PATH", help="the kubeconfig to write"
    )
    parser.add_argument("--namespace", default="seldon", help="default: seldon")
    parser.add_argument(
        "--deployment",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="an Available SeldonDeployment whose status.address.url is URL (repeatable)",
    )
    parser.add_argument(
        "--protocol",
        default="v2",
        choices=("v2", "seldon"),
        help="spec.protocol of every deployment (default: v2)",
    )
    parser.add_argument(
        "--local-mlserver",
        action="store_true",
        help="start a local MLServer (iris) and add deployment 'iris' at its URL",
    )
    parser.add_argument(
        "--core2",
        action="store_true",
        help="also serve Seldon Core 2: Models, Pipelines and Experiments created through the "
        "API turn Ready, behind a stand-in mesh (routing by Seldon-Model) in front of the "
        "first deployment's URL",
    )
    parser.add_argument(
        "--serve-for", default="1h", metavar="DURATION", help="stop after this long (default: 1h)"
    )
    args = parser.parse_args(argv)
    try:
        serve_for = parse_duration_s(args.serve_for, "--serve-for")
    except ValueError as exc:
        parser.error(str(exc))
    targets: dict[str, str] = {}
    for entry in args.deployment:
        name, _, url = entry.partition("=")
        if not name or not url.startswith(("http://", "https://")):
            parser.error(f"--deployment: expected NAME=http://host:port, got {entry!r}")
        targets[name] = url
    server = None
    if args.local_mlserver:
        import tempfile

        from pytest_seldon_load.cluster.local import LocalSeldonServer

        server = LocalSeldonServer(Path(tempfile.mkdtemp(prefix="emulated-mlserver-"))).start()
        targets.setdefault("iris", server.base_url)
    if not targets:
        parser.error("give at least one --deployment NAME=URL, or --local-mlserver")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with EmulatedKubernetes() as cluster:
            path = cluster.write_kubeconfig(args.kubeconfig, namespace=args.namespace)
            for name, url in targets.items():
                cluster.create_deployment(
                    name,
                    args.namespace,
                    protocol=args.protocol,
                    model=name,
                    state="Available",
                    address_url=url,
                )
                print(f"SeldonDeployment {args.namespace}/{name}: Available at {url}")
            if args.core2:
                mesh = cluster.start_mesh(next(iter(targets.values())))
                cluster.create_mesh_service(args.namespace)
                print(
                    f"seldon-mesh: {mesh.url}; Core 2 Models, Pipelines and Experiments "
                    "created through the API turn Ready and are routed by Seldon-Model"
                )
            print(f"Kubernetes API: {cluster.url}; kubeconfig: {path}")
            print("pytest --seldon-kubeconfig", path, "--seldon-deployment", next(iter(targets)))
            print(f"Ctrl-C to stop (stops by itself after {args.serve_for}).", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait(serve_for)
    finally:
        if server is not None:
            server.stop()
    return 0
