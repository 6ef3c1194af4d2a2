"""Result objects serialise themselves; p-values print honestly."""

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from fetal_analytics.results import Result, format_p, is_p_value, plain


@dataclass(frozen=True)
class Example(Result):
    table: pd.DataFrame
    value: float
    when: datetime
    big: np.ndarray = field(metadata={"serialise": False})

    frame_field: ClassVar[str] = "table"


def test_to_dict_is_json_safe_and_to_frame_copies_the_table():
    table = pd.DataFrame({"a": [1.0, np.nan], "b": [np.int64(2), np.int64(3)]})
    result = Example(table, math.inf, datetime(2024, 1, 2, 3, 4), np.zeros(10))
    record = result.to_dict()
    assert record == {"table": [{"a": 1.0, "b": 2}, {"a": None, "b": 3}], "value": None,
                      "when": "2024-01-02T03:04:00"}
    assert json.loads(json.dumps(record, allow_nan=False)) == record
    frame = result.to_frame()
    frame.loc[0, "a"] = 9.0
    assert result.table.loc[0, "a"] == 1.0
    assert plain({"x": (np.float32(0.5), np.bool_(True))}) == {"x": [0.5, True]}


def test_a_result_without_a_table_says_so():
    @dataclass(frozen=True)
    class Scalar(Result):
        value: float

    with pytest.raises(TypeError, match="Scalar has no table"):
        Scalar(1.0).to_frame()


def test_p_values_below_double_resolution_are_not_zero():
    assert format_p(0.0) == "< 1e-16" and format_p(1e-300) == "< 1e-16"
    assert format_p(0.0123) == "0.012" and format_p(float("nan")) == ""
    assert [is_p_value(c) for c in ("p", "pearson_p", "p_adjusted", "cox_p", "ppv", "pos")] == [
        True, True, True, True, False, False]
