"""Errors of a sweep that the `dml` command turns into an exit status (no Prefect import)."""


class SweepFailed(RuntimeError):
    """A sweep that ran to its end but failed: every trial failed (the message gives each
    distinct cause once), or MLflow did not get its results (the message names the tracking
    URI and what it lacks), or MLflow did not answer at the start."""
