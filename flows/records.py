"""A sweep's results in its own directory, kept before anything is sent to MLflow.

    <report dir>/records/<trial_id>.json                  a final trial's TrialRecord
    <report dir>/tuning_records/<method>/<index>.json     a tuning trial's TuningTrial

Each file is written atomically (dml_experiment.provenance.write_atomic) as its trial ends,
before the trial is sent to MLflow, so a trial that ended while the tracking server was away
is neither lost nor trained again: a resumed sweep reads these files with what MLflow holds,
skips the trials they finished and sends the ones MLflow lacks. The report can be written
from them alone.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from dml_experiment.provenance import write_atomic
from dml_experiment.record import TrialRecord, TuningTrial

log = logging.getLogger(__name__)

TRIALS, TUNING = "records", "tuning_records"


class RecordStore:
    """The records of sweep `sweep` under `out_dir`. A tuning trial is known by (method,
    index), so its record also names the search it belongs to (`search`, the key from
    TuneSettings.search_key): another sweep in the same directory that gives the method the
    same key reuses it, and one that changed the method's search does not. A final trial's id
    is a hash of its whole config, the same in any sweep."""

    def __init__(self, out_dir: str | Path, sweep: str):
        self.out_dir, self.sweep = Path(out_dir), sweep

    @property
    def trials_dir(self) -> Path:
        return self.out_dir / TRIALS

    @property
    def tuning_dir(self) -> Path:
        return self.out_dir / TUNING

    def write_trial(self, record: TrialRecord) -> Path:
        path = self.trials_dir / f"{record.trial_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(record.row(), indent=1, default=str))
        return path

    def trials(self, trial_ids=None) -> dict[str, TrialRecord]:
        """{trial_id: record} of the records on disk (of `trial_ids` only, when given)."""
        out = {}
        for path in sorted(self.trials_dir.glob("*.json")) if self.trials_dir.is_dir() else []:
            if trial_ids is not None and path.stem not in trial_ids:
                continue
            record = read_json(path, lambda d: TrialRecord.model_validate(d))
            if record is not None:
                out[record.trial_id] = record
        return out

    def write_tuning(self, trial: TuningTrial, search: str | None = None) -> Path:
        path = self.tuning_dir / trial.method / f"{trial.index}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        keyed = {"search": search} if search else {}
        write_atomic(path, json.dumps({"sweep": self.sweep, **keyed, **trial.row()}, indent=1, default=str))
        return path

    def tuning(self, method: str, search: str | None = None) -> dict[int, TuningTrial]:
        """{index: trial} of the method's tuning trials on disk that belong to its search
        `search`; a record without a search key (written before records had one), or any
        record when `search` is None, belongs to the sweep it names."""
        directory = self.tuning_dir / method
        out = {}
        for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
            row = read_json(path, dict)
            if row is None:
                continue
            sweep, key = row.pop("sweep", None), row.pop("search", None)
            if (key != search) if (key and search) else (sweep != self.sweep):
                continue
            try:
                trial = TuningTrial(**row)
            except TypeError as e:
                log.warning("ignored %s, not a tuning trial (%s): the trial runs again", path, e)
                continue
            out[trial.index] = trial
        return out

    def key_tuning(self, method: str, search: str) -> int:
        """Give this sweep's records of `method` that have no search key the key `search`
        (the sweep that wrote them reads them: its search is theirs); returns how many."""
        stamped = 0
        for index, trial in self.tuning(method).items():
            path = self.tuning_dir / method / f"{index}.json"
            row = read_json(path, dict)
            if row is not None and not row.get("search"):
                self.write_tuning(trial, search)
                stamped += 1
        return stamped


def read_json(path: Path, parse):
    """parse(the file's JSON), or None with a warning: a file these functions did not write
    whole (edited by hand, say) costs a re-run of its trial, never the sweep."""
    try:
        return parse(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as e:
        log.warning("ignored unreadable record %s (%s): its trial runs again", path, e)
        return None
