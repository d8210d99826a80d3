"""MLflow tracking of a sweep: one parent run per sweep, one nested child run per trial.

    tracker = SweepTracker("dml-sweep", "quick-1a2b3c4d", "quick", resolved_config,
                           uri=tracking_uri(PROJECT_DIR), tags={"dml.data_version": "..."})
    with tracker:                        # start() ... finish(); an exception ends it FAILED
        done = tracker.finished_trials() # {trial_id: run_id}: skip these on resume
        for record in records:         # TrialRecord, as the runner returns them
            tracker.log_trial(record)
        tracker.log_best_model(best, "dml-embedder")
        tracker.log_report(report_dir)

dml_core never imports this module: MLflow stays a concern of the orchestration layer.
Everything goes through an explicit ``MlflowClient`` bound to ``uri`` (no global active
run), so a tracker is safe to use from Prefect task threads next to other trackers. The one
exception is ``mlflow.pytorch.log_model``, which only works on the fluent API; it runs inside
:func:`use_tracking_uri`, which restores the global URI afterwards.

Metric names
------------
MLflow 3.17 accepts metric and param names of alphanumerics, ``_``, ``-``, ``.``, space,
``/`` and (not on Windows) ``:``, and rejects names that normalise to another path (``a//b``,
``../x``). :func:`metric_key` maps the names of dml_core to such names, stably:

* ``@`` becomes ``_at_``: ``recall@1`` -> ``recall_at_1``, ``map@r`` -> ``map_at_r``,
  ``precision@1`` -> ``precision_at_1``, ``ndcg@4`` -> ``ndcg_at_4``;
* ``/`` is kept, so the UI groups by prefix: ``val/recall@1`` -> ``val/recall_at_1``,
  ``eval/map@r`` -> ``eval/map_at_r``, ``train/loss`` stays ``train/loss``;
* any other character outside ``[A-Za-z0-9_ ./-]`` (``:`` included, for Windows) becomes
  ``_``; repeated ``/`` collapse and leading or trailing ``/`` are dropped.

A trial's history rows are logged with ``step=epoch`` under their mapped names; its final
eval metrics (``record.metrics``) under the bare mapped names (``recall_at_1``, ``map_at_r``,
``nmi``, ...) at the last epoch's step, plus ``trial_seconds``. The parent run gets the best
trial's final metrics as ``best/<name>`` when :meth:`SweepTracker.log_best_model` runs.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dml_experiment.provenance import git_state
from dml_experiment.record import FINISHED
from dml_experiment.report.trial_plots import embedding_figure, recall_figure
from dml_core.training.saved import example_batch, rebuild_model

log = logging.getLogger(__name__)

DB_FILE = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui` serves the embedded store by default

# Tag keys. The sweep and role tags find a sweep's runs again after a restart.
PARENT = "mlflow.parentRunId"  # what mlflow.start_run(nested=True) sets: the UI nests on it
GIT_COMMIT = "mlflow.source.git.commit"  # shown by the UI on the run page
SWEEP, ROLE, TRIAL_ID, ERROR = "dml.sweep", "dml.role", "dml.trial_id", "dml.error"
# A digest of the TrialRecord a child run holds: sending the same record again finds the run
# (see SweepTracker.log_trial), while a re-run trial's new record gets a run of its own.
RECORD_DIGEST = "dml.record_digest"
COMPLETE = ("FINISHED", "FAILED")  # a run is complete once ended so: its status is set last
NOTE = "mlflow.note.content"  # the run's description, shown (as Markdown) on its page
PACKAGES = ("torch", "ray", "prefect", "mlflow", "dml")

# MLflow's limits (mlflow.utils.validation, 3.17): longer values are an error or truncated
# with a warning depending on MLFLOW_TRUNCATE_LONG_VALUES; we cut them ourselves, visibly.
MAX_PARAM_VALUE, MAX_TAG_VALUE, MAX_KEY = 6000, 8000, 250
MAX_PARAMS_PER_BATCH, MAX_METRICS_PER_BATCH = 100, 1000
TRUNCATED = "...[truncated; see the config artifact]"

# The runs page state of MLflow 3.17's UI (see SweepTracker.runs_url): grouped by sweep.
RUNS_VIEW = "dml-sweeps"
RUNS_VIEW_STATE = {
    "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": SWEEP}]},
    "selectedColumns": ["metrics.`recall_at_1`", "metrics.`map_at_r`", "metrics.`nmi`", "tags.`dml.method`"],
}


# -- the store ----------------------------------------------------------------------------------
def tracking_uri(project_dir: str | os.PathLike) -> str:
    """MLFLOW_TRACKING_URI if set (a server), else the embedded SQLite store
    ``sqlite:///<abs project_dir>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path(project_dir).resolve() / DB_FILE}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0]).resolve()


def default_artifact_location(uri: str, experiment: str) -> str | None:
    """For the embedded SQLite store: ``file:///<db dir>/mlartifacts/<experiment>``, an
    absolute URI so artifacts land in the project whatever the working directory. For a
    server or another store: None (the server's own artifact root, proxied or not)."""
    db = sqlite_path(uri)
    if db is None:
        return None
    slug = re.sub(r"[^\w.-]+", "_", experiment).strip("._") or "default"
    return (db.parent / ARTIFACT_DIR / slug).as_uri()


def redacted_uri(uri: str) -> str:
    """The URI without a password in it (``http://user:secret@host`` -> ``http://user:***@host``):
    what the sweep may print or log. Credentials belong in MLFLOW_TRACKING_USERNAME /
    MLFLOW_TRACKING_PASSWORD, but a URI may carry them too."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def record_digest(record) -> str:
    """A stable digest of a TrialRecord's content (its results.json row)."""
    import hashlib

    return hashlib.sha1(json.dumps(record.row(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def ui_command(uri: str, port: int = 5000) -> str:
    """The shell command that browses `uri` (for the embedded store: `mlflow ui`)."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port {port}"


@contextlib.contextmanager
def use_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (global state) at `uri` for the block, then restore it.

    ``mlflow.set_tracking_uri`` also writes MLFLOW_TRACKING_URI into the environment, and
    :func:`tracking_uri` reads that variable: without the restore, one tracker would
    redirect every later one."""
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # None unsets both the global and the variable


# -- names and values ---------------------------------------------------------------------------
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")


def metric_key(name: str) -> str:
    """A dml_core metric name as MLflow accepts it (see the module docstring for the map):
    ``val/recall@1`` -> ``val/recall_at_1``."""
    key = _BAD_KEY_CHARS.sub("_", name.replace("@", "_at_"))
    key = re.sub(r"/+", "/", key).strip("/")
    return (key or "_")[:MAX_KEY]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"loss": {"name": "triplet", "options": {"margin": 0.2}}} -> {"loss.name": "triplet",
    "loss.options.margin": 0.2}; empty dicts and lists stay leaves."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def param_value(value: Any) -> str:
    """Strings as they are, everything else as JSON (true/null/[1, 2]), cut to MLflow's limit."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > MAX_PARAM_VALUE:
        text = text[: MAX_PARAM_VALUE - len(TRUNCATED)] + TRUNCATED
    return text


def params_of(tree: dict[str, Any]) -> dict[str, str]:
    return {metric_key(k): param_value(v) for k, v in flatten(tree).items()}


def tag_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 3] + "..."


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def now_ms() -> int:
    return int(time.time() * 1000)


# -- run names and descriptions ------------------------------------------------------------------
def trial_run_name(method: str, seed: int, partition: Any = None) -> str:
    """The arm and the replicate a trial run is: the profile's method name, the seed, and
    the dataset's partition where it has one: ``contrastive_pos_margin-seed0``,
    ``triplet_all-seed2-p3``."""
    name = f"{method}-seed{seed}"
    return name if partition is None else f"{name}-p{partition}"


def trial_run_names(trials, partitions: dict[str, Any] | None = None) -> dict[str, str]:
    """{trial_id: run name} for the (method, TrialConfig) pairs of a sweep, unique within it.

    Grid trials (method ``grid``) add their loss, miner and distance. Should two trials still
    share a name (a grid with one loss twice, with different options), the later ones get
    their trial id appended, so no two runs of a sweep look alike in the MLflow UI."""
    from dml_core.training.identity import trial_id, trial_name

    partitions = partitions or {}
    names: dict[str, str] = {}
    taken: set[str] = set()
    for method, cfg in trials:
        tid = trial_id(cfg)
        arm = f"grid-{trial_name(cfg).rsplit('-seed', 1)[0]}" if method == "grid" else method
        if cfg.eval.split is None:  # a run of the convergence study (validation only), named for its length
            arm = f"{arm}-study{cfg.train.epochs}ep"
        # The replicate's class partition (TrialConfig.partition), else the dataset's own.
        name = trial_run_name(arm, cfg.seed, getattr(cfg, "partition", 0) or partitions.get(cfg.dataset))
        if name in taken:
            name = f"{name}-{tid}"
        taken.add(name)
        names[tid] = name
    return names


def dataset_partitions(datasets) -> dict[str, Any]:
    """{dataset dir: the ``params.partition`` of its card} for the datasets that have one."""
    from dml_core.data import read_card

    out = {}
    for dataset in datasets:
        partition = (read_card(dataset).get("params") or {}).get("partition")
        if partition is not None:
            out[dataset] = partition
    return out


def sweep_description(sweep_name: str, profile: str, config: dict[str, Any]) -> str:
    """The parent run's description (Markdown): the profile and every comparison the sweep
    runs, with its claim, methods and the claims its verdicts test."""
    lines = [f"Sweep `{sweep_name}` of profile `{profile}`."]
    if config.get("description"):
        lines += ["", " ".join(str(config["description"]).split())]
    comparisons = config.get("comparisons") or {}
    if comparisons:
        lines += ["", "Comparisons:"]
        for cid, comp in comparisons.items():
            line = f"- **{cid}** ({comp.get('metric', 'map@r')}): {comp.get('claim', '')} Methods: {', '.join(comp.get('methods', []))}"
            if comp.get("baselines"):
                line += " and the raw-input baselines"
            if comp.get("expect"):
                line += "; tests " + ", ".join(f"`{e}`" for e in comp["expect"])
            lines.append(line + ".")
    methods = config.get("methods") or {}
    if methods:
        lines += ["", f"Methods ({len(methods)}): {', '.join(methods)}; seeds {config.get('seeds')}."]
    return "\n".join(lines)


# -- provenance ---------------------------------------------------------------------------------
def git_tags() -> dict[str, str]:
    """The commit of the code that ran and whether tracked files differed from it."""
    commit, dirty = git_state(Path(__file__).resolve().parent)
    if not commit:
        return {"dml.git_commit": "unknown"}
    return {"dml.git_commit": commit, GIT_COMMIT: commit, "dml.git_dirty": str(dirty).lower()}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[f"dml.version.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[f"dml.version.{name}"] = "not installed"
    return versions


# -- the model ------------------------------------------------------------------------------------
def signature_of(image_shape: Sequence[int], embedding_dim: int):
    """[-1, C, H, W] float32 images -> [-1, D] float32 embeddings; -1: any batch size."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    h, w, c = image_shape
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, c, h, w))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, embedding_dim))]),
    )


# -- the tracker ----------------------------------------------------------------------------------
class SweepTracker:
    """One MLflow parent run per sweep (reopened when a sweep of the same name resumes) and a
    nested child run per trial. See the module docstring for the metric names.

    `config` is the sweep's resolved config (JSON-able dict). `tags` go on the parent run
    (e.g. the data versions); a ``dml.data_version`` among them is copied to every trial.
    `uri` defaults to :func:`tracking_uri` of `project_dir` (default: the working directory).
    """

    def __init__(
        self,
        experiment: str,
        sweep_name: str,
        profile: str,
        config: dict[str, Any],
        *,
        uri: str | None = None,
        tags: dict[str, Any] | None = None,
        project_dir: str | os.PathLike | None = None,
        artifact_location: str | None = None,
    ):
        if "'" in sweep_name or '"' in sweep_name:
            raise ValueError(f"sweep name {sweep_name!r} must not contain quotes (it is used in MLflow search filters)")
        self.experiment, self.sweep_name, self.profile = experiment, sweep_name, profile
        self.config = config
        self.uri = uri or tracking_uri(project_dir or os.getcwd())
        self.tags = {k: tag_value(v) for k, v in (tags or {}).items()}
        self.artifact_location = artifact_location or default_artifact_location(self.uri, experiment)
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.resumed = False
        self._client: MlflowClient | None = None
        self._git: dict[str, str] | None = None
        self.failed = False  # set by fail(): the sweep ends FAILED without an exception
        self.previous_tags: dict[str, str] = {}  # the parent run's tags when start() reopened it
        self.left_open: str | None = None  # set by leave_open(): the parent run is not ended

    # The client holds a database engine: rebuilt lazily, and left out of pickles, so a
    # tracker can be a Prefect task argument (Prefect hashes and may pickle arguments).
    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> "SweepTracker":
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.left_open:
            log.warning("the parent run of sweep %s stays open: %s", self.sweep_name, self.left_open)
        elif exc_type is None:
            self.finish(RunStatus.to_string(RunStatus.FAILED if self.failed else RunStatus.FINISHED))
        else:
            # Ctrl-C is a kill, not a failure of the sweep.
            status = RunStatus.KILLED if issubclass(exc_type, KeyboardInterrupt) else RunStatus.FAILED
            self.best_effort(lambda: self.client.set_tag(self.parent_run_id, ERROR, tag_value(f"{exc_type.__name__}: {exc}")))
            # Best effort: the error that ended the sweep is the one to see, not MLflow's.
            self.best_effort(lambda: self.finish(RunStatus.to_string(status)))
        return False  # never swallow the exception

    def leave_open(self, reason: str) -> None:
        """Do not end the parent run on exit (the tracking server cannot be reached): the
        next sweep of this name reopens it."""
        self.left_open = reason

    def start(self) -> str:
        """Open the sweep's parent run, or reopen it when a sweep of this name exists; log
        tags, the config (artifact and params); mark runs a killed process left RUNNING."""
        self._ensure_experiment()
        previous = self._find_parent()
        if previous is not None:
            self.parent_run_id, self.resumed = previous.info.run_id, True
            self.previous_tags = dict(previous.data.tags)
            self.client.update_run(self.parent_run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            tags = {**self._parent_tags(), "dml.resumed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            if ERROR in previous.data.tags:  # the error of the attempt that failed before
                self.client.delete_tag(self.parent_run_id, ERROR)
        else:
            tags = self._parent_tags()
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=self.sweep_name)
            self.parent_run_id = run.info.run_id
        # Tags are re-set on resume: the code (commit, versions) running now is what they say.
        self.log_batch(self.parent_run_id, tags=tags)
        self._log_config(previous)
        self.mark_interrupted()
        return self.parent_run_id

    def finish(self, status: str = "FINISHED") -> None:
        """End the parent run with `status` (FINISHED, FAILED or KILLED)."""
        self._require_started()
        self.client.set_terminated(self.parent_run_id, status)

    def fail(self, message: str) -> None:
        """Have the parent run end FAILED, with `message` in ``dml.error``, though no
        exception ended the sweep (every trial failed, each recorded with its own error)."""
        self._require_started()
        self.client.set_tag(self.parent_run_id, ERROR, tag_value(message))
        self.failed = True

    def mark_interrupted(self) -> list[str]:
        """Set every run of this sweep still RUNNING (the parent or trials of a killed earlier
        process) to KILLED, except this tracker's open parent run. Returns their ids."""
        self._ensure_experiment()
        runs = self.search_runs(f"tags.`{SWEEP}` = '{self.sweep_name}' AND attributes.status = 'RUNNING'")
        killed = []
        for run in runs:
            if run.info.run_id == self.parent_run_id:
                continue
            self.client.set_tag(run.info.run_id, "dml.interrupted", "true")
            self.client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
            killed.append(run.info.run_id)
        if killed:
            log.warning("marked %d interrupted run(s) of sweep %s KILLED", len(killed), self.sweep_name)
        return killed

    def finished_trials(self) -> dict[str, str]:
        """{trial_id: run_id} of this sweep's child runs that FINISHED (the latest per trial):
        a resumed sweep skips these trials."""
        self._require_started()
        runs = self.search_runs(
            f"tags.`{PARENT}` = '{self.parent_run_id}' AND attributes.status = 'FINISHED'",
            order_by=["attributes.start_time ASC"],
        )
        return {r.data.tags[TRIAL_ID]: r.info.run_id for r in runs if TRIAL_ID in r.data.tags}

    def logged_digests(self) -> set[str]:
        """The record digests of this sweep's complete child runs: a record on disk whose
        digest is not here has not reached MLflow yet."""
        self._require_started()
        runs = self.search_runs(f"tags.`{PARENT}` = '{self.parent_run_id}' AND tags.`{ROLE}` = 'trial'")
        return {r.data.tags[RECORD_DIGEST] for r in runs if r.info.status in COMPLETE and RECORD_DIGEST in r.data.tags}

    # -- trials --------------------------------------------------------------------------------
    def log_trial(self, record, tags: dict[str, Any] | None = None, run_name: str | None = None) -> str:
        """Record one TrialRecord as a child run named `run_name` (default: the trial's
        name; a sweep passes :func:`trial_run_names`'s); returns its run id. A failed trial
        ends FAILED with its error in ``dml.error``.

        Idempotent, so a sweep can send a record again after any failure: a complete run of
        this record (its status is set last) is returned as it is; a half-logged one (the
        server went away mid-way) is ended KILLED and deleted, and the record logged anew."""
        self._require_started()
        digest = record_digest(record)
        existing = self.search_runs(f"tags.`{PARENT}` = '{self.parent_run_id}' AND tags.`{TRIAL_ID}` = '{record.trial_id}'")
        # Runs of another digest are earlier outcomes of this trial (it failed and ran again): kept.
        sent = self.complete_run(r for r in existing if r.data.tags.get(RECORD_DIGEST) == digest)
        if sent is not None:
            return sent
        start = now_ms() - int(max(record.seconds, 0.0) * 1000)
        tags = {**self._trial_tags(record, tags), RECORD_DIGEST: digest}
        return self.log_run(start, tags, run_name or record.name, lambda run_id: self._log_trial_data(run_id, record),
                            failed=record.status != FINISHED)

    def complete_run(self, runs: Iterable) -> str | None:
        """The id of the first complete run of `runs` (the record was sent before), the
        half-logged ones met before it discarded; None where there is none."""
        for run in runs:
            if run.info.status in COMPLETE:
                return run.info.run_id
            self.discard_run(run.info.run_id)
        return None

    def log_run(self, start_ms: int, tags: dict[str, str], run_name: str, log_data: Callable[[str], None], *,
                failed: bool) -> str:
        """A run of this experiment started at `start_ms`, filled by log_data(run_id), then
        ended FAILED where `failed`, else FINISHED. Where log_data fails, the run is ended
        KILLED, never FAILED (that would read as a failed trial), and a retry deletes it."""
        run_id = self.client.create_run(self.experiment_id, start_time=start_ms, tags=tags, run_name=run_name).info.run_id
        try:
            log_data(run_id)
        except BaseException:
            self.best_effort(lambda: self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED)))
            raise
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED))
        return run_id

    def discard_run(self, run_id: str) -> None:
        """End a half-logged run KILLED (so none stays RUNNING) and delete it."""
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
        self.client.delete_run(run_id)

    def _trial_tags(self, record, extra: dict[str, Any] | None) -> dict[str, str]:
        cfg = record.trial_config
        method = "-".join(p for p in (cfg.loss.name, cfg.miner.name if cfg.miner else None, cfg.distance) if p)
        tags = {
            PARENT: self.parent_run_id, SWEEP: self.sweep_name, ROLE: "trial", "dml.profile": self.profile,
            TRIAL_ID: record.trial_id, "dml.seed": cfg.seed, "dml.method": method, "dml.loss": cfg.loss.name,
            "dml.miner": cfg.miner.name if cfg.miner else "none", "dml.distance": cfg.distance or "default",
            "dml.model": cfg.model.name, "dml.dataset": cfg.dataset, "dml.trial_status": record.status,
        }
        tags.update(self._git_tags())
        tags.update({k: v for k, v in self.tags.items() if k == "dml.data_version"})
        tags.update(extra or {})
        if record.error:
            tags[ERROR] = record.error
        return {k: tag_value(v) for k, v in tags.items()}

    def _log_trial_data(self, run_id: str, record) -> None:
        config = dict(record.config)
        metrics = self._history_metrics(record.history)
        last_step = max((m.step for m in metrics), default=0)
        ts = now_ms()
        metrics += [Metric(metric_key(k), float(v), ts, last_step) for k, v in record.metrics.items() if is_number(v)]
        metrics.append(Metric("trial_seconds", float(record.seconds), ts, last_step))
        params = [Param(k, v) for k, v in params_of(config).items()]
        self.log_batch(run_id, metrics=metrics, params=params)
        self.client.log_dict(run_id, config, "config.json")
        self._log_plots(run_id, record)
        if record.embeddings_path and Path(record.embeddings_path).is_file():
            self.client.log_artifact(run_id, record.embeddings_path, "embeddings")

    @staticmethod
    def _history_metrics(history: Sequence[dict[str, Any]]) -> list[Metric]:
        ts, out = now_ms(), []
        for i, row in enumerate(history):
            step = int(row.get("epoch", i))
            out += [Metric(metric_key(k), float(v), ts, step) for k, v in row.items() if k != "epoch" and is_number(v)]
        return out

    def _log_plots(self, run_id: str, record) -> None:
        fig = recall_figure(record.metrics, record.history, record.name)
        if fig is not None:
            self.client.log_figure(run_id, fig, "plots/recall_at_k.png")
        if record.embeddings_path and Path(record.embeddings_path).is_file():
            from dml_core.metrics import load_embeddings

            emb, labels = load_embeddings(record.embeddings_path)
            fig = embedding_figure(emb, labels, f"{record.name}: eval embeddings (PCA)")
            self.client.log_figure(run_id, fig, "plots/embeddings_pca.png")

    # -- the best model ------------------------------------------------------------------------
    def log_best_model(self, record, registered_model_name: str):
        """Log the trial's trained embedder with ``mlflow.pytorch`` (the safe ``pt2``
        torch.export format, a signature and an input example) into the trial's child run
        (the parent run if the trial has none) and register it as a new version of
        `registered_model_name`. Returns MLflow's ModelInfo (``registered_model_version``,
        ``model_uri``); the parent run gets ``dml.best_*`` tags and ``best/*`` metrics."""
        import torch

        self._require_started()
        try:
            model, shape = rebuild_model(record.trial_config, record.model_path)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"trial {record.trial_id}: {e}") from None
        example = example_batch(record.trial_config, shape)
        with torch.no_grad():
            dim = int(model(example).shape[1])
        run_id = self.finished_trials().get(record.trial_id, self.parent_run_id)
        before = self.client.get_run(run_id).info
        with use_tracking_uri(self.uri), mlflow.start_run(run_id=run_id):
            info = mlflow.pytorch.log_model(
                model, name="model", signature=signature_of(shape, dim), input_example=example.numpy(),
                registered_model_name=registered_model_name, serialization_format="pt2",
                # Explicit: inferring them loads the model in a subprocess. A pt2 model needs
                # only torch; without the local label (+cpu) pip can install it.
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )
        # start_run(run_id) reopened the run (RUNNING) and ending it stamped a new end time:
        # put back the trial's own status and duration.
        if before.end_time:
            self.client.set_terminated(run_id, before.status, end_time=before.end_time)
        version = str(info.registered_model_version)
        for key, value in ((TRIAL_ID, record.trial_id), (SWEEP, self.sweep_name), ("dml.run_id", run_id)):
            self.client.set_model_version_tag(registered_model_name, version, key, value)
        tags = {"dml.best_trial_id": record.trial_id, "dml.best_run_id": run_id, "dml.best_model_uri": info.model_uri,
                "dml.registered_model": f"{registered_model_name}/{version}"}
        best = [Metric(f"best/{metric_key(k)}", float(v), now_ms(), 0) for k, v in record.metrics.items() if is_number(v)]
        self.log_batch(self.parent_run_id, metrics=best, tags=tags)
        return info

    # -- report --------------------------------------------------------------------------------
    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Attach a file to the parent run."""
        self._require_started()
        self.client.log_artifact(self.parent_run_id, str(path), artifact_path)

    def log_report(self, directory: str | os.PathLike) -> None:
        """Attach a report directory to the parent run, under ``report/``."""
        self._require_started()
        self.client.log_artifacts(self.parent_run_id, str(directory), "report")

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """Sweep-level numbers (e.g. trials finished / failed) on the parent run."""
        self._require_started()
        ts = now_ms()
        self.log_batch(self.parent_run_id, metrics=[Metric(metric_key(k), float(v), ts, step) for k, v in metrics.items() if is_number(v)])

    def parent_url(self, ui_url: str | None = None) -> str:
        """The parent run's page: on the tracking server, or on `ui_url` (default
        MLFLOW_UI_URL or `mlflow ui`'s http://127.0.0.1:5000) for the embedded store."""
        self._require_started()
        return f"{self._ui_base(ui_url)}/#/experiments/{self.experiment_id}/runs/{self.parent_run_id}"

    def runs_url(self, ui_url: str | None = None) -> str:
        """The experiment's runs table grouped by sweep, with the final metrics as columns.

        The plain runs table nests trial runs, collapsed, under their sweep's parent run, and
        a collapsed row cannot be opened by URL. A shared view can group by the ``dml.sweep``
        tag instead, which lists every trial: it is an experiment tag holding the page state
        as JSON (what the UI's Share button writes), stored here once per experiment."""
        self._ensure_experiment()
        self.client.set_experiment_tag(self.experiment_id, f"mlflow.sharedViewState.{RUNS_VIEW}", json.dumps(RUNS_VIEW_STATE))
        return f"{self._ui_base(ui_url)}/#/experiments/{self.experiment_id}/runs?viewStateShareKey={RUNS_VIEW}"

    def _ui_base(self, ui_url: str | None) -> str:
        base = self.uri if self.uri.startswith(("http://", "https://")) else (ui_url or os.environ.get("MLFLOW_UI_URL", UI_URL))
        return base.rstrip("/")

    # -- internals -----------------------------------------------------------------------------
    def _require_started(self) -> None:
        if self.parent_run_id is None:
            raise RuntimeError("SweepTracker.start() first (or use it as a context manager)")

    def _ensure_experiment(self) -> str:
        if self.experiment_id is not None:
            return self.experiment_id
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                self.experiment_id = self.client.create_experiment(self.experiment, artifact_location=self.artifact_location)
                return self.experiment_id
            except MlflowException:  # another process created it meanwhile
                exp = self.client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise
        if exp.lifecycle_stage == "deleted":
            self.client.restore_experiment(exp.experiment_id)
        self.experiment_id = exp.experiment_id
        return self.experiment_id

    def search_runs(self, filter_string: str, order_by: list[str] | None = None) -> list:
        """All matching runs of the experiment, every page."""
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string, ViewType.ACTIVE_ONLY, max_results=1000, order_by=order_by, page_token=token
            )
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def _find_parent(self):
        runs = self.search_runs(f"tags.`{SWEEP}` = '{self.sweep_name}' AND tags.`{ROLE}` = 'sweep'", order_by=["attributes.start_time DESC"])
        return runs[0] if runs else None

    def _parent_tags(self) -> dict[str, str]:
        tags = {SWEEP: self.sweep_name, ROLE: "sweep", "dml.profile": self.profile, **self._git_tags(), **package_versions(),
                NOTE: sweep_description(self.sweep_name, self.profile, self.config)}
        tags.update(self.tags)
        return {k: tag_value(v) for k, v in tags.items()}

    def _git_tags(self) -> dict[str, str]:
        """git_tags(), asked once per tracker (two git calls)."""
        if self._git is None:
            self._git = git_tags()
        return self._git

    def _log_config(self, previous) -> None:
        """The resolved config as an artifact and as flat params. Params are immutable in
        MLflow: on resume only new keys are logged, and changed values are named in a tag."""
        self.client.log_dict(self.parent_run_id, self.config, "config/sweep_config.json")
        params = params_of(self.config)
        old = previous.data.params if previous is not None else {}
        changed = sorted(k for k, v in params.items() if k in old and old[k] != v)
        if changed:
            log.warning("sweep %s resumed with changed params %s (MLflow keeps the first values)", self.sweep_name, changed)
            self.log_batch(self.parent_run_id, tags={"dml.changed_params_on_resume": ", ".join(changed)})
        self.log_batch(self.parent_run_id, params=[Param(k, v) for k, v in params.items() if k not in old])

    def log_batch(self, run_id: str, *, metrics: Sequence[Metric] = (), params: Sequence[Param] = (), tags: dict[str, str] | None = None) -> None:
        """log_batch within MLflow's per-request limits (100 params or tags, 1000 metrics)."""
        tag_list = [RunTag(k, tag_value(v)) for k, v in (tags or {}).items()]
        for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=list(params[i:i + MAX_PARAMS_PER_BATCH]))
        for i in range(0, len(tag_list), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, tags=tag_list[i:i + MAX_PARAMS_PER_BATCH])
        for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=list(metrics[i:i + MAX_METRICS_PER_BATCH]))

    @staticmethod
    def best_effort(action) -> None:
        """Best effort while already handling an error: never mask the original one."""
        try:
            action()
        except Exception as e:  # noqa: BLE001
            log.warning("MLflow call failed while handling an error: %s", e)
