"""Fixtures of the analytics tests."""

import pytest
from workflow_cohorts import build


@pytest.fixture
def strong(cohort_store):
    """Trainees spend twice as long on the heart; 8 operators per group, 3 scans each."""
    return build(cohort_store, 1, factors={"trainee": {"HeD": 2.0}}, revisit_p=0.0)
