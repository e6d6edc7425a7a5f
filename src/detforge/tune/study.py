"""A study: its folder, storage, sampler and pruner, and the worker loop that runs trials.

The default storage is an Optuna journal file in the study folder (``journal.log``, with the
open-file lock several local processes can share); any Optuna storage URL
(``postgresql://...``) passes through. Re-running the same command opens the same study and
carries on. ``trials`` counts every trial that finished (complete, pruned, failed) or runs, over
all workers: each worker counts and asks under a lock file in the study folder, so K workers
never start more than ``trials`` trials between them.

A trial left RUNNING by a worker that died (SIGKILL, a power cut) is found by the worker's host
name, pid and process start time recorded on the trial: it is marked failed, with that reason,
and its parameters are queued again once (a re-queued trial that dies too is not queued again).
Journal storages have no heartbeat, hence the pid check; it sees the workers of this machine.
RDB storages (``storage=URL``) find dead workers on any machine by heartbeat
(:mod:`detforge.tune.storage`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, RunConfig, load_config
from ..config.loader import parse_overrides
from ..config.schema import ALIASES
from ..engine.preflight import check_before_data
from .fidelity import low_fidelity
from .final import final_line, final_run
from .kfold_trial import run_kfold_trial
from .outputs import best_trial, progress_line, write_best_yaml, write_plots, write_trials_csv
from .parts import PRUNERS, SAMPLERS, import_optuna, make_pruner, make_sampler
from .report import write_study_report
from .space import Space
from .storage import fail_silent_trials, heartbeat, make_storage, superseded
from .trial import run_trial
from .workers import counted, fail_dead_local_workers, locked, me, result_attrs

__all__ = ["TuneOptions", "Tuner", "SAMPLERS", "PRUNERS"]

log = logging.getLogger("detforge")

POLL = 2.0  # seconds between looks at the other workers' running trials


@dataclass
class TuneOptions:
    """What ``detforge tune`` takes besides the space: the training settings of every trial
    (``key=value``, with ``cfg_file`` below them), the trial budget and the study's storage."""

    space: Space
    settings: list[str] = field(default_factory=list)
    cfg_file: str | None = None
    trials: int | None = None  # None: every combination of a grid
    timeout: float | None = None  # seconds; a worker starts no trial after it
    storage: str | None = None  # None: the journal file in the study folder
    study: str | None = None  # None: the space's name
    sampler: str | None = None  # None: grid for a grid space, else tpe
    pruner: str = "hyperband"
    epochs: int | None = None  # tune.epochs: epochs per trial (None: the settings' epochs)
    fraction: float | None = None  # tune.fraction: the trials' data.fraction (None: settings')
    imgsz: int | None = None  # tune.imgsz: the trials' image size (None: the settings')
    kfold: int | None = None  # tune.kfold: score each trial by K-fold cross-validation
    kfold_group: str | None = None  # tune.kfold_group: file-name regex kept in one fold
    heartbeat: int | None = None  # tune.heartbeat: seconds, RDB storages (None: 60)
    final: bool = False  # retrain the best trial at the full budget once the study is done


def _settings_map(settings: list[str]) -> dict[str, Any]:
    """``key=value`` strings -> ``{dotted key: value}`` (aliases resolved, the last one wins)."""
    out: dict[str, Any] = {}
    for key, value in parse_overrides(settings):
        out[ALIASES.get(key, key)] = value
    return out


class Tuner:
    """One worker of a study: ``Tuner(opts).run()`` runs trials until the study has ``trials``;
    ``finish()`` writes the plots and returns the summary."""

    def __init__(self, opts: TuneOptions, worker: int = 0, pruner: Any = None):
        self.opts, self.space, self.worker = opts, opts.space, worker
        self.optuna = import_optuna()
        self.values = _settings_map(opts.settings)
        if "train.resume" in self.values:
            raise ConfigError("tune: train.resume is not a tuning setting; trials start anew")
        self.base = load_config(self.values, cfg_file=opts.cfg_file, notes=[])
        check_before_data(self.base)
        self.name = opts.study or self.space.name
        self.dir = Path(self.base.train.project) / "tune" / self.name
        self.sampler_name = opts.sampler or ("grid" if self.space.is_grid else "tpe")
        for what, name, choices in (("sampler", self.sampler_name, SAMPLERS),
                                    ("pruner", opts.pruner, PRUNERS)):  # fmt: skip
            if name not in choices:
                raise ConfigError(f"tune: {what} '{name}' is not one of {', '.join(choices)}")
        self.total = self._total()
        self.epochs = opts.epochs or self.base.train.epochs
        self.low_fidelity = low_fidelity(opts.epochs, opts.fraction, opts.imgsz, self.epochs,
                                         self.space)  # fmt: skip
        self.pruner = pruner if pruner is not None else self._pruner()
        self._storage = None
        if opts.storage is None and opts.heartbeat is not None:
            self.storage()  # rejects tune.heartbeat before any trial
        self._check_first_trial()

    def _total(self) -> int:
        n = self.opts.trials
        if self.sampler_name == "grid":
            size = self.space.grid_size()
            if n is not None and n > size:
                log.info("trials=%d: the grid has %d combinations, each runs once", n, size)
            return size if n is None else min(n, size)
        if n is None:
            raise ConfigError(f"tune: trials= is needed with sampler {self.sampler_name}")
        return n

    def _check_first_trial(self) -> None:
        """Settings that only fail combined with the space's values fail here, not per trial:
        the lowest value of every range (first choice of every list) must make a valid run."""
        fixed = {}
        for p in self.space.params:
            fixed[p.key] = p.low if p.kind in ("float", "int") else p.choices[0]
        self.trial_config(fixed, 0)

    # ---------------------------------------------------------------- optuna parts
    def _sampler(self, offset: int):
        """The sampler of this worker; its seed moves on with the trials the study already
        has (``offset``), so a resumed study does not draw its first trials again."""
        seed = self.base.train.seed + 1000 * self.worker + offset
        return make_sampler(self.optuna, self.sampler_name, seed)

    def _pruner(self):
        # with tune.kfold a trial reports once per fold, else once per validated epoch
        return make_pruner(self.optuna, self.opts.pruner, self.opts.kfold or self.epochs)

    def storage(self):
        """The study's storage (built once per worker): see :mod:`detforge.tune.storage`."""
        if self._storage is None:
            self._storage = make_storage(self.optuna, self.opts.storage, self.dir,
                                         self.opts.heartbeat)  # fmt: skip
        return self._storage

    def open(self):
        """Create or load the study; a study made with another space or settings is an error."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with locked(self.dir / "tune.lock"):
            study = self.optuna.create_study(
                study_name=self.name, storage=self.storage(), pruner=self.pruner,
                direction="maximize", load_if_exists=True,
            )  # fmt: skip
            if self.sampler_name == "grid":
                # every combination queued once, in file order: workers take them from the
                # storage (Optuna's GridSampler stops the study from inside tell, which only
                # works in study.optimize)
                for point in self.space.grid_points():
                    study.enqueue_trial(point, skip_if_exists=True)
            made_with = json.loads(json.dumps(
                {"space": self.space.describe(), "settings": self._trial_settings()}
            ))  # fmt: skip
            for key, value in made_with.items():
                if key not in study.user_attrs:
                    study.set_user_attr(key, value)
                elif study.user_attrs[key] != value:
                    raise ConfigError(
                        f"tune: study '{self.name}' in {self.dir} was started with other "
                        f"{key}; resume it with the same command, or start a new one with "
                        "study=NAME"
                    )
        return study

    def _trial_settings(self) -> dict[str, Any]:
        out = {**self.values, "tune.epochs": self.epochs}
        if self.opts.fraction is not None:
            out["tune.fraction"] = self.opts.fraction
        if self.opts.imgsz is not None:
            out["tune.imgsz"] = self.opts.imgsz
        if self.opts.kfold:
            out.update({"tune.kfold": self.opts.kfold, "tune.kfold_group": self.opts.kfold_group})
        if self.opts.cfg_file:
            out["cfg"] = str(self.opts.cfg_file)
        return out

    def trial_values(self, params: dict[str, Any], number: int) -> dict[str, Any]:
        """The settings of trial ``number``: the study's, its parameters, its low-fidelity
        settings (epochs, data fraction, image size) and run folder."""
        return {
            **self.values, **params, **self.low_fidelity, "train.project": str(self.dir),
            "train.name": f"trial_{number:03d}", "train.exist_ok": True,
        }  # fmt: skip

    def trial_config(self, params: dict[str, Any], number: int) -> RunConfig:
        values = self.trial_values(params, number)
        cfg = load_config(values, cfg_file=self.opts.cfg_file)  # logs short-run fits per trial
        check_before_data(cfg)
        return cfg

    # ---------------------------------------------------------------- the worker loop
    def run(self) -> None:
        """Run trials until the study has ``trials`` of them (or ``timeout`` passed). On an RDB
        storage a worker stays while other trials run: if one's worker dies, its parameters
        are queued again and a waiting worker runs them."""
        study = self.open()
        start = time.monotonic()
        while True:
            if self.opts.timeout is not None and time.monotonic() - start >= self.opts.timeout:
                log.info("tune: timeout reached; worker %d starts no more trials", self.worker)
                break
            trial, trials = self._next_trial(study)
            if trial is not None:
                with heartbeat(study._storage, trial._trial_id):
                    self._run_one(study, trial)
            elif self.opts.storage and any(t.state.name == "RUNNING" for t in trials):
                time.sleep(POLL)
            else:
                break

    def _next_trial(self, study) -> tuple[Any, list]:
        """Under the study lock: fail the trials of dead workers, then ask for a trial unless
        the study has its ``trials`` (None then); the trials as they were before asking. The
        sampler is seeded again from the number of trials before each ask, so the same command
        gives the same trials in one worker, and workers that opened the study together (other
        machines, all worker 0) do not draw the same parameters."""
        with locked(self.dir / "tune.lock"):
            self.fail_stale(study)
            trials = study.get_trials(deepcopy=False)
            if counted(trials) >= self.total:
                return None, trials
            study.sampler = self._sampler(len(trials))
            trial = study.ask()
            trial.set_user_attr("worker", me())
            return trial, trials

    def _run_one(self, study, trial) -> None:
        params = self.space.suggest(trial)
        run_dir = self.dir / f"trial_{trial.number:03d}"
        try:
            cfg: RunConfig | Exception = self.trial_config(params, trial.number)
        except ConfigError as e:
            cfg = e
        if self.opts.kfold:
            values = cfg if isinstance(cfg, Exception) else self.trial_values(params, trial.number)
            weights = self.base.train.fitness if isinstance(cfg, Exception) else cfg.train.fitness
            outcome = run_kfold_trial(
                trial, values, run_dir, self.opts.kfold, weights, self.opts.kfold_group,
                self.opts.cfg_file,
            )  # fmt: skip
        else:
            outcome = run_trial(trial, cfg, run_dir)
        trial.set_user_attr("result", result_attrs(outcome))
        state = self.optuna.trial.TrialState
        if outcome.state == "complete":
            study.tell(trial, outcome.fitness)
        else:
            study.tell(trial, state=state.PRUNED if outcome.state == "pruned" else state.FAIL)
        with locked(self.dir / "tune.lock"):
            trials = study.get_trials(deepcopy=False)
            self.write_outputs(study, trials)
        done = next(t for t in trials if t.number == trial.number)
        print(progress_line(done, trials, self.total), flush=True)

    def fail_stale(self, study) -> None:
        """Mark trials of dead workers failed and queue their params once: by heartbeat on an
        RDB storage, else by the pid of the workers of this host."""
        if self.opts.storage:
            fail_silent_trials(self.optuna, study, self.dir)
            return
        fail_dead_local_workers(self.optuna, study, self.dir)

    def write_outputs(self, study, trials: list) -> None:
        """trials.csv, best.yaml and report.html (with the plots the folder has so far)."""
        write_trials_csv(self.dir / "trials.csv", trials, self.space)
        best = best_trial(trials)
        if best is not None:
            write_best_yaml(self.dir / "best.yaml", self.base, best, self.name)
        final = study.user_attrs.get("final")
        write_study_report(self.dir, self.name, trials, self.space, self.total, final)

    def final(self) -> dict[str, Any]:
        """The final run's record (trained here unless it exists or another worker trains
        it): see :mod:`detforge.tune.final`."""
        return final_run(self, self.open())

    def finish(self) -> list[str]:
        """Write the plots, trials.csv, best.yaml and report.html; the summary lines."""
        study = self.open()
        with locked(self.dir / "tune.lock"):
            trials = study.get_trials(deepcopy=False)
            write_plots(study, self.dir)
            self.write_outputs(study, trials)
        again = superseded(trials)
        states = [t.state.name for t in trials if t.number not in again]
        lines = [
            f"study {self.name}: {states.count('COMPLETE')} complete, {states.count('PRUNED')} "
            f"pruned, {states.count('FAIL')} failed of {self.total} trials ({self.dir})"
        ]
        best = best_trial(trials)
        if best is None:
            lines.append("no trial completed; see reason.txt in the trial folders")
        else:
            params = ", ".join(f"{k}={v}" for k, v in best.params.items())
            lines.append(f"best: trial {best.number}, fitness {best.value:.5f}: {params}")
            lines.append(f"train it: detforge train cfg={self.dir / 'best.yaml'}")
        final = final_line(study.user_attrs.get("final"))
        if final:
            lines.append(final)
        return lines
