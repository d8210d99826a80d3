"""Orchestration: the Prefect flow `dml-sweep`, the `dml` command line, MLflow tracking.

Only wiring lives here: every step is a dml_core function that can be called and tested alone.
"""
