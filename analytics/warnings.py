"""Warnings of the analytics package.

Degenerate data (one scan, one operator in a group, a constant feature) makes a statistic
impossible to compute. The analytics then return NaN for it and warn with
`DegenerateDataWarning`, in the manner of scipy's ``ConstantInputWarning``, instead of raising.
"""

from __future__ import annotations

__all__ = ["CoverageWarning", "DegenerateDataWarning"]


class DegenerateDataWarning(UserWarning):
    """A statistic could not be computed from the data given (too few values, no variation).

    The result holds NaN where the statistic would be; the message says which rows and why.
    """


class CoverageWarning(UserWarning):
    """Manual labels cover too little of the scans for a comparison to mean what its name says
    (e.g. freeze clips against whole automatic timelines); the message says why."""
