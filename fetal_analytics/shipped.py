"""Files shipped with the package: the repository's top-level ``data/`` folder.

In the repository the files live in ``data/`` (the layout users were promised), and
``fetal_analytics/data`` is a symbolic link to it, so a checkout, an editable install and a wheel
(where setuptools copies the files into ``fetal_analytics/data/``) all find them as resources of
the ``fetal_analytics`` package. ``data/README.md`` lists them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["shipped_file"]


def shipped_file(name: str) -> Path:
    """The path of a shipped data file, e.g. ``shipped_file("demo_model.keras")``.

    The path is resolved (in a checkout: ``data/NAME``) and returned whether or not the file
    exists (a checkout may lack a file that a command makes, such as the demo model before
    ``make demo-model``).
    """
    return Path(str(resources.files("fetal_analytics").joinpath("data", name))).resolve()
