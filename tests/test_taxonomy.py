import re

import pytest

from fetal_analytics import taxonomy

PAPER_CLASSES = ["HeD", "3Dm", "Bk", "Br", "MaD", "Sp", "Ab", "NL", "Ki", "Fa", "Fm"]
RARE_CLASSES = ["Um", "Fb", "BlD", "Fe", "Th", "sex", "Ha", "Ar", "Le"]


def test_the_paper_classes_come_first_in_frequency_order_then_the_rarer_nine():
    assert list(taxonomy.codes()) == PAPER_CLASSES + RARE_CLASSES
    assert list(taxonomy.default_model_codes()) == PAPER_CLASSES
    shares = [taxonomy.get(c).paper_share_pct for c in PAPER_CLASSES]
    assert shares == sorted(shares, reverse=True)
    assert all(taxonomy.get(c).paper_share_pct is None for c in RARE_CLASSES)


def test_colours_are_distinct_hex_and_names_distinct():
    classes = taxonomy.all_classes()
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c.colour) for c in classes)
    assert len({c.colour for c in classes}) == len(classes)
    assert len({c.name for c in classes}) == len(classes)


def test_fasp_requires_fetal_structures_not_activities():
    required = set(taxonomy.fasp_required_codes())
    assert {"HeD", "Br", "Sp", "Ab", "Ki", "NL", "Fm"} <= required
    assert not required & {"Bk", "3Dm", "MaD", "Fa", "sex"}


def test_unknown_code_lists_valid_codes_and_suggests_the_closest():
    with pytest.raises(taxonomy.UnknownLabelError) as error:
        taxonomy.validate_code("Heart")
    message = str(error.value)
    assert "did you mean 'HeD'?" in message
    assert "valid codes: HeD, 3Dm, Bk" in message
    assert "did you mean" not in taxonomy.unknown_label_message("zzzz")


def test_codes_are_case_sensitive():
    assert taxonomy.validate_code("HeD") == "HeD"
    with pytest.raises(taxonomy.UnknownLabelError, match="did you mean 'HeD'"):
        taxonomy.get("hed")
