"""Drift: data drift of features, predictions and scores against a reference; data quality;
concept drift on the error stream; performance estimated before labels arrive; calibration.

``tracker.ModelDrift`` holds all of them for one model; the monitor feeds it.
"""
