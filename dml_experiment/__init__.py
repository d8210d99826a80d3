"""dml_experiment: the benchmark that runs dml_core, as powerful-benchmarker runs
pytorch-metric-learning.

It holds the profiles of params.yaml and their validation (`profile`, `grid`, `resources`),
the tuning (`tuning.space`: the search space; `tuning.search`: running it on Ray Tune), the
Ray runner of the final grid (`runner`), the record of a trial's outcome (`record`), and the
report with its verdicts (`report`), plus provenance. It imports dml_core; dml_core never
imports it. Prefect and MLflow stay in flows/.
"""
