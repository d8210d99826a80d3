"""Errors of a sweep that the `dml` command turns into an exit status (no Prefect import)."""


class SweepFailed(RuntimeError):
    """Every trial of a sweep failed: the message gives each distinct cause once."""
