"""A tiny Job controller for the emulated cluster: Indexed Jobs whose pods are local processes.

What Kubernetes' Job controller and a kubelet would do, done through the emulated API: for a
new Indexed Job it makes one pod per index (labelled ``job-name``, annotated with the
completion index), runs each pod's container as a process of this machine (``seldon-load``
becomes this Python's ``-m pytest_seldon_load.cli``), with its ConfigMap volumes written to a
temporary directory, ``$(VAR)`` references expanded from the container's env (values and the
index annotation) and its output kept as the pod's log (`EmulatedKubernetes.pod_logs`). A
finished process sets its pod's phase (Succeeded or Failed) and the Job's counts. A deleted
Job or pod has its processes killed. Only what the kubernetes engine uses is emulated.
"""

from __future__ import annotations

import base64
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from .api import EmulatedKubernetes

TICK_S = 0.1
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class _PodProcess:
    def __init__(self, namespace: str, name: str, job: str, process: subprocess.Popen) -> None:
        self.namespace, self.name, self.job, self.process = namespace, name, job, process
        self.reported = False
        self.listed = False
        """Seen in a listing: from then on, absent from one means deleted."""


class EmulatedJobController:
    """Runs on a thread beside `emulator` from `start()` to `stop()`."""

    def __init__(self, emulator: EmulatedKubernetes) -> None:
        self.emulator = emulator
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs: set[tuple[str, str]] = set()
        self._pods: list[_PodProcess] = []
        self._workdir = Path(tempfile.mkdtemp(prefix="emulated-jobs-"))
        self.pods_started = 0

    def start(self) -> EmulatedJobController:
        self._thread = threading.Thread(target=self._loop, name="emulated-jobs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(10)
        for pod in self._pods:
            if pod.process.poll() is None:
                pod.process.kill()
            pod.process.wait(5)
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> EmulatedJobController:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def running(self) -> list[str]:
        """Names of pods whose processes still run."""
        return [p.name for p in self._pods if p.process.poll() is None]

    @property
    def batch(self) -> k8s.BatchV1Api:
        return k8s.BatchV1Api(self.emulator.api)

    def _loop(self) -> None:
        while not self._halt.wait(TICK_S):
            try:
                jobs: list[Any] = self.batch.list_job_for_all_namespaces(_request_timeout=5).items
                pods: list[Any] = self.emulator.core.list_pod_for_all_namespaces(
                    _request_timeout=5
                ).items
            except Exception:  # the API is going away
                continue
            present_jobs = {(j.metadata.namespace, j.metadata.name) for j in jobs}
            present_pods = {(p.metadata.namespace, p.metadata.name) for p in pods}
            for job in jobs:
                key = (job.metadata.namespace, job.metadata.name)
                if key not in self._jobs:
                    self._jobs.add(key)
                    with contextlib.suppress(Exception):
                        self._start_job(job)
            for pod in self._pods:
                listed = (pod.namespace, pod.name) in present_pods
                job_gone = (pod.namespace, pod.job) not in present_jobs
                if not pod.listed and not job_gone:
                    # Created after this tick's listing: absent from it says nothing yet.
                    pod.listed = listed
                    continue
                gone = job_gone or not listed
                if gone and pod.process.poll() is None:
                    pod.process.kill()
                if not gone and not pod.reported and pod.process.poll() is not None:
                    with contextlib.suppress(Exception):
                        self._finish(pod)

    def _start_job(self, job: Any) -> None:
        namespace, name = job.metadata.namespace, job.metadata.name
        spec = self.emulator.api.sanitize_for_serialization(job.spec)
        template = spec["template"]
        for index in range(int(spec.get("completions") or 1)):
            pod_name = f"{name}-{index}"
            labels = {**template.get("metadata", {}).get("labels", {}), "job-name": name}
            labels[INDEX_ANNOTATION] = str(index)
            manifest: Any = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": {INDEX_ANNOTATION: str(index)},
                },
                "spec": template["spec"],
            }
            self.emulator.core.create_namespaced_pod(namespace, manifest)
            command = self._command(namespace, template["spec"], index)
            log = (self._workdir / f"{namespace}-{pod_name}.log").open("wb")
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            self.pods_started += 1
            self._pods.append(_PodProcess(namespace, pod_name, name, process))

    def _command(self, namespace: str, spec: dict[str, Any], index: int) -> list[str]:
        container = spec["containers"][0]
        env: dict[str, str] = {}
        for variable in container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            elif INDEX_ANNOTATION in str(variable.get("valueFrom", "")):
                env[variable["name"]] = str(index)
        mounts: dict[str, Path] = {}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            source = volumes[mount["name"]].get("configMap")
            if source is None:
                continue
            config_map = self.emulator.core.read_namespaced_config_map(source["name"], namespace)
            directory = self._workdir / f"{namespace}-{source['name']}"
            directory.mkdir(exist_ok=True)
            for key, text in (config_map.data or {}).items():
                (directory / key).write_text(text, encoding="utf-8")
            for key, encoded in (config_map.binary_data or {}).items():  # as kubelet: bytes
                (directory / key).write_bytes(base64.b64decode(encoded))
            mounts[mount["mountPath"]] = directory
        words = list(container.get("command", [])) + list(container.get("args", []))
        if words and words[0] == "seldon-load":
            words = [sys.executable, "-m", "pytest_seldon_load.cli", *words[1:]]

        def local(word: str) -> str:
            word = _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), word)
            for path, directory in mounts.items():
                if word.startswith(path.rstrip("/") + "/"):
                    word = str(directory) + word[len(path.rstrip("/")) :]
            return word

        return [local(word) for word in words]

    def _finish(self, pod: _PodProcess) -> None:
        log = self._workdir / f"{pod.namespace}-{pod.name}.log"
        self.emulator.pod_logs[(pod.namespace, pod.name)] = log.read_text("utf-8", "replace")
        phase = "Succeeded" if pod.process.returncode == 0 else "Failed"
        self.emulator.core.patch_namespaced_pod_status(
            pod.name, pod.namespace, {"status": {"phase": phase}}
        )
        pod.reported = True
        siblings = [p for p in self._pods if p.job == pod.job and p.namespace == pod.namespace]
        succeeded = sum(p.reported and p.process.returncode == 0 for p in siblings)
        failed = sum(p.reported and p.process.returncode != 0 for p in siblings)
        with contextlib.suppress(Exception):
            self.batch.patch_namespaced_job_status(
                pod.job, pod.namespace, {"status": {"succeeded": succeeded, "failed": failed}}
            )
