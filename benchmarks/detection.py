"""Validation of predwatch's detectors on streams with known change points: both tables.

Data drift (``detection_data.py``: covariate shifts injected into generated
traffic) and concept drift (``detection_concept.py``: river's synthetic
generators with abrupt and gradual concept changes, a model trained before the
change). Each prints detection rate, mean and max delay in events after the
change, and false alarms per 100,000 stable events, over ten seeds.

    .venv/bin/python benchmarks/detection.py          # about four minutes on two cores
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import detection_concept  # a sibling script, importable once on the path
import detection_data

if __name__ == "__main__":
    detection_data.main([])
    print()
    table = detection_concept.concept_drift_table()
    print(
        f"concept drift, {len(detection_concept.SEEDS)} seeds; "
        f"{detection_concept.STABLE:,} stable events and {detection_concept.AFTER:,} after "
        "the change per seed"
    )
    print(detection_concept._format(table))
