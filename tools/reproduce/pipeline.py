"""The machinery of ``python -m tools reproduce <paper>``: stages in order, resumable, with a manifest.

A paper's experiment is a list of :class:`Stage` s (a feature classifier, a VAE, the models,
their evaluation, the tables and figures).  :meth:`Pipeline.run` runs them in order:

* a stage that finished (its record ``<out>/stages/<name>.json`` exists) is skipped, and its
  record is reused; ``--force STAGE`` (or ``--force all``) runs it again, its fits retrained
  from scratch;
* inside a stage, every ``train.py fit`` goes through :meth:`Pipeline.fit`, which skips a
  finished fit and resumes an interrupted one from its ``last.ckpt`` -- only when it was
  started with the same settings (its ``SETTINGS`` file), else it stops and asks for ``--force``
  (:func:`tools.sweep.run_fit`), so a killed pipeline loses at most the steps since the last
  checkpoint; :meth:`Pipeline.fit_many` runs a stage's independent fits (the seeds, the
  compared models) ``--jobs`` at a time, each command with ``OMP_NUM_THREADS`` = cores / jobs;
* the output of every command a stage runs goes to ``<out>/logs/<stage>.log``; a command
  that fails stops the pipeline with one line naming the stage and that log
  (:class:`StageFailed`); the finished stages' records stay;
* after each stage ``<out>/manifest.json`` is rewritten (atomically): the command line, the
  scale and seeds, the versions (Python, torch, torchvision, Lightning, the project's git
  commit), and per stage its commands, checkpoints, metrics and wall time.  Every number on a
  results page comes from this file.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from core.errors import UserError
from core.io import atomic_write_bytes
from tools import sweep

__all__ = ["Pipeline", "Stage", "StageFailed", "project_versions"]


@dataclass
class Stage:
    """One step of a pipeline: ``run(pipeline)`` returns the metrics to record (a JSON-able dict)."""

    name: str
    what: str
    run: Callable[["Pipeline"], dict[str, Any]]


class StageFailed(UserError):
    """A command of a stage failed; the message names the stage and its log."""


@dataclass
class _Record:
    commands: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)


def project_versions() -> dict[str, str]:
    """Python, torch, torchvision, Lightning and the project's git commit (``+dirty`` with local changes)."""
    import lightning
    import torch
    import torchvision

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "torchvision": torchvision.__version__, "lightning": lightning.__version__}  # fmt: skip
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=sweep.ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=sweep.ROOT,
                               capture_output=True, text=True, check=True)  # fmt: skip
        versions["project"] = commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        versions["project"] = "unknown (not a git checkout)"
    return versions


class Pipeline:
    """Runs a paper's stages into ``out_dir`` (see the module docstring).

    Args:
        paper: the pipeline's name (``de_gan``, ...), recorded in the manifest.
        out_dir: ``runs/reproduce/<paper>`` by default.
        data_root: the folder holding ``mnist/`` and ``cifar10/`` (``../shared/data`` here).
        scale: ``default`` (2 CPU cores, minutes) or ``paper`` (the paper's settings, a GPU cluster).
        seeds: the seeds every compared model is trained with.
        force: stage names to run again even if finished (``all``: every stage).
        dry_run: print the commands, run nothing, write nothing.
        settings: the scale's settings, recorded in the manifest.
        jobs: how many fits :meth:`fit_many` runs at once; each command gets
            ``OMP_NUM_THREADS`` = CPU cores / jobs unless the environment sets it.
    """

    def __init__(
        self,
        paper: str,
        out_dir: str,
        data_root: str,
        scale: str,
        seeds: Sequence[int],
        force: Sequence[str] = (),
        dry_run: bool = False,
        settings: Optional[dict[str, Any]] = None,
        jobs: int = 1,
    ) -> None:
        if jobs < 1:
            raise UserError(f"--jobs {jobs}: give at least 1")
        self.paper, self.out, self.data_root, self.scale = paper, os.path.abspath(out_dir), data_root, scale
        self.seeds, self.force, self.dry_run, self.settings = list(seeds), set(force), dry_run, settings or {}
        self.jobs = jobs
        self.logs, self.stage_dir = os.path.join(self.out, "logs"), os.path.join(self.out, "stages")
        self.records: dict[str, dict[str, Any]] = {}
        self._current: Optional[tuple[str, _Record]] = None
        self._forced = False  # the running stage was named by --force: its fits start afresh
        self._started = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    # ------------------------------------------------------------------ paths
    def path(self, *parts: str) -> str:
        """A path under the pipeline's folder."""
        return os.path.join(self.out, *parts)

    def fit_dir(self, tag: str) -> str:
        """Where :meth:`fit` trains ``tag`` (``<out>/runs/<tag>/fit``)."""
        return self.path("runs", tag, "fit")

    def checkpoint(self, tag: str) -> str:
        """The last checkpoint of the fit ``tag``."""
        return os.path.join(self.fit_dir(tag), "checkpoints", "last.ckpt")

    def log_path(self, stage: str) -> str:
        return os.path.join(self.logs, f"{stage}.log")

    # ------------------------------------------------------------------ what stages call
    def metrics(self, stage: str) -> dict[str, Any]:
        """What the finished stage ``stage`` returned (its record's ``metrics``); ``{}`` when it has not run."""
        return (self.records.get(stage) or {}).get("metrics") or {}

    def _stage(self) -> tuple[str, _Record]:
        if self._current is None:
            raise RuntimeError("Pipeline.fit/command are for use inside a running stage")
        return self._current

    def command(self, cmd: Sequence[str]) -> None:
        """Run ``cmd`` (a subprocess), its output appended to the stage's log; a failure raises :class:`StageFailed`."""
        name, record = self._stage()
        record.commands.append(shlex.join(cmd))
        print(f"  $ {shlex.join(cmd)}", flush=True)
        if self.dry_run:
            return
        os.makedirs(self.logs, exist_ok=True)
        with open(self.log_path(name), "a") as log:
            log.write(f"\n$ {shlex.join(cmd)}\n")
            log.flush()
            code = subprocess.run(list(cmd), stdout=log, stderr=subprocess.STDOUT, cwd=sweep.ROOT,
                                  env=self._child_env()).returncode
        if code != 0:
            raise StageFailed(f"stage {name!r} failed (exit {code}); its log: {self.log_path(name)}")

    def _child_env(self) -> dict[str, str]:
        """The environment of the commands: ``OMP_NUM_THREADS`` = cores / jobs unless the caller set it."""
        env = dict(os.environ)
        if "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.jobs))
        return env

    def _prepare_fit(self, tag: str, config: str, overrides: Sequence[str]) -> tuple[Optional[list[str]], str]:
        """The command of the fit ``tag`` (None when finished) and its last checkpoint; refuses mixed settings."""
        name, record = self._stage()
        fit_dir = self.fit_dir(tag)
        cmd = sweep.train_command("fit", config, overrides, self.path("runs"), tag, "fit")
        finished, last = os.path.join(fit_dir, "FINISHED"), self.checkpoint(tag)
        record.checkpoints.append(os.path.relpath(last, self.out))
        if self._forced and not self.dry_run and os.path.isdir(fit_dir):
            shutil.rmtree(fit_dir)  # --force STAGE: retrain, do not reuse the finished fit
        settings, settings_file = shlex.join(cmd[2:]), os.path.join(fit_dir, "SETTINGS")
        if os.path.isfile(settings_file) and (os.path.isfile(finished) or os.path.isfile(last)):
            with open(settings_file) as handle:
                before = handle.read().strip()
            if before != settings:  # reusing (or resuming) it would mix two experiments
                raise UserError(
                    f"stage {name!r}: the fit {tag} in {fit_dir} was made with other settings than this run's "
                    f"({before!r}, now {settings!r}); rerun with --force {name} to retrain it"
                )
        if os.path.isfile(finished):
            record.commands.append(shlex.join(cmd))
            print(f"  # done: {tag}", flush=True)
            return None, last
        if not self.dry_run:
            os.makedirs(fit_dir, exist_ok=True)
            with open(settings_file, "w") as handle:
                handle.write(settings + "\n")
        if os.path.isfile(last):
            cmd = cmd + ["--ckpt_path", last]  # resume the interrupted fit
        return cmd, last

    def _mark_finished(self, tag: str, cmd: Sequence[str]) -> None:
        if not self.dry_run:
            with open(os.path.join(self.fit_dir(tag), "FINISHED"), "w") as handle:
                handle.write(shlex.join(cmd) + "\n")

    def fit(self, tag: str, config: str, overrides: Sequence[str] = ()) -> str:
        """``train.py fit -c config overrides`` into :meth:`fit_dir`; skipped when finished, resumed when
        interrupted.  Returns the path of its last checkpoint."""
        cmd, last = self._prepare_fit(tag, config, overrides)
        if cmd is not None:
            self.command(cmd)
            self._mark_finished(tag, cmd)
        return last

    def fit_many(self, fits: Sequence[tuple[str, str, Sequence[str]]]) -> list[str]:
        """Several independent fits ``(tag, config, overrides)``, up to ``jobs`` at a time.

        Each is skipped, resumed or refused as in :meth:`fit`; each running fit writes its own
        log, ``logs/<stage>/<tag>.log``.  When one fails, the others still finish (and count as
        done on the next run), then :class:`StageFailed` names the first failed fit and its log.
        Returns the fits' last checkpoints, in order.
        """
        name, record = self._stage()
        todo, lasts = [], []
        for tag, config, overrides in fits:
            cmd, last = self._prepare_fit(tag, config, overrides)
            lasts.append(last)
            if cmd is not None:
                record.commands.append(shlex.join(cmd))
                print(f"  $ {shlex.join(cmd)}", flush=True)
                todo.append((tag, cmd))
        if self.dry_run or not todo:
            return lasts
        env, running, failed = self._child_env(), [], []
        queue = list(todo)
        while queue or running:
            while queue and len(running) < self.jobs:
                tag, cmd = queue.pop(0)
                log_path = os.path.join(self.logs, name, tag.replace(os.sep, "_") + ".log")
                os.makedirs(os.path.dirname(log_path), exist_ok=True)
                log = open(log_path, "a")
                log.write(f"\n$ {shlex.join(cmd)}\n")
                log.flush()
                proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, cwd=sweep.ROOT, env=env)
                running.append((proc, log, tag, cmd, log_path))
            time.sleep(0.2)
            for item in [r for r in running if r[0].poll() is not None]:
                proc, log, tag, cmd, log_path = item
                running.remove(item)
                log.close()
                if proc.returncode == 0:
                    self._mark_finished(tag, cmd)
                    print(f"  # finished: {tag}", flush=True)
                else:
                    failed.append((tag, proc.returncode, log_path))
        if failed:
            tag, code, log_path = failed[0]
            raise StageFailed(f"stage {name!r} failed: the fit {tag} (exit {code}); its log: {log_path}")
        return lasts

    # ------------------------------------------------------------------ running
    def _load_record(self, name: str) -> Optional[dict[str, Any]]:
        path = os.path.join(self.stage_dir, f"{name}.json")
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None  # a damaged record: the stage runs again

    def _write_json(self, path: str, data: dict[str, Any]) -> None:
        atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())

    def write_manifest(self, stages: Sequence[Stage]) -> None:
        manifest = {
            "paper": self.paper,
            "command": shlex.join([os.path.basename(sys.executable), "-m", "tools", *sys.argv[1:]])
            if sys.argv and sys.argv[0].endswith("__main__.py")
            else shlex.join(sys.argv),
            "scale": self.scale,
            "settings": self.settings,
            "seeds": self.seeds,
            "data_root": os.path.abspath(self.data_root),
            "versions": project_versions(),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "omp_num_threads": self._child_env()["OMP_NUM_THREADS"], "jobs": self.jobs},  # fmt: skip
            "started": self._started,
            "stages": [{"name": s.name, "what": s.what, **self.records.get(s.name, {"status": "not run"})}
                       for s in stages],  # fmt: skip
        }
        self._write_json(self.path("manifest.json"), manifest)

    def run(self, stages: Sequence[Stage]) -> dict[str, dict[str, Any]]:
        """Run ``stages`` in order (finished ones skipped); returns every stage's record."""
        names = [s.name for s in stages]
        unknown = self.force - set(names) - {"all"}
        if unknown:
            raise UserError(f"--force {' '.join(sorted(unknown))}: no such stage; the stages are {', '.join(names)}")
        for index, stage in enumerate(stages, 1):
            forced = stage.name in self.force or "all" in self.force
            saved = None if forced else self._load_record(stage.name)
            if saved is not None and saved.get("status") == "done":
                self.records[stage.name] = saved
                print(f"[{index}/{len(stages)}] {stage.name}: done ({saved.get('wall_s', 0):.0f} s earlier)", flush=True)
                continue
            print(f"[{index}/{len(stages)}] {stage.name}: {stage.what}", flush=True)
            record = _Record()
            self._current, self._forced = (stage.name, record), forced
            start = time.time()
            try:
                metrics = stage.run(self)
            finally:
                self._current, self._forced = None, False
            result = {"status": "done", "wall_s": round(time.time() - start, 1), "commands": record.commands,
                      "checkpoints": record.checkpoints, "metrics": metrics,
                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
            if self.dry_run:
                continue
            self.records[stage.name] = result
            self._write_json(os.path.join(self.stage_dir, f"{stage.name}.json"), result)
            self.write_manifest(stages)
            print(f"    {stage.name}: {result['wall_s']:.0f} s", flush=True)
        if not self.dry_run:
            self.write_manifest(stages)
        return self.records
