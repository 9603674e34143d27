"""The monitor's pipeline: a typed view of each batch, and the stages that read it.

The monitor joins a batch, builds one ``Batch`` view of what the join decided
(``batch.py``) and hands it to each stage in order: counts, quality, drift,
diagnostics, delays. At a tick each stage adds its figures to the report
(``predwatch.report``).
"""
