"""The scan simulator: realistic synthetic full-length anomaly scans with exact ground truth.

`simulate_cohort` draws the workflow (who scanned what, when, and where they froze the image);
`fetal_analytics.synth.render` turns a scan's timeline into screen video.
"""

from fetal_analytics.synth.cohort import Cohort, manual_label_clips, simulate_cohort, write_cohort
from fetal_analytics.synth.config import WorkflowConfig, default_config

__all__ = [
    "Cohort",
    "WorkflowConfig",
    "default_config",
    "manual_label_clips",
    "simulate_cohort",
    "write_cohort",
]
