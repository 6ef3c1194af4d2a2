import numpy as np
import pytest

from inference.augment import METHODS, augment_clip
from inference.dataset import DatasetSpec, split_operators


def moving_square(frames=6, size=32):
    clip = np.zeros((frames, size, size), np.uint8)
    for t in range(frames):
        clip[t, 8:14, 4 + 3 * t: 10 + 3 * t] = 255
    return clip


@pytest.mark.parametrize("method", METHODS)
def test_every_frame_of_a_clip_gets_the_same_transform(method):
    clip = moving_square()
    rng = np.random.default_rng(1)
    augmented = augment_clip(clip, rng, method=method)
    assert augmented.shape == clip.shape and augmented.dtype == np.uint8
    assert not np.array_equal(augmented, clip)
    if method == "noise":
        return  # noise differs per pixel by design; the same field is added to every frame
    # The square's displacement between frames survives: same transform for all frames.
    shifted = [augment_clip(clip[t:t + 1], np.random.default_rng(1), method=method)[0]
               for t in range(len(clip))]
    np.testing.assert_array_equal(np.stack(shifted), augmented)


def test_flips_are_exact_and_the_method_is_drawn_at_random():
    clip = moving_square()
    np.testing.assert_array_equal(augment_clip(clip, None, method="hflip"), clip[:, :, ::-1])
    np.testing.assert_array_equal(augment_clip(clip, None, method="vflip"), clip[:, ::-1])
    rng = np.random.default_rng(0)
    outcomes = {augment_clip(clip, rng).tobytes() for _ in range(40)}
    assert len(outcomes) > 10
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        augment_clip(clip, rng, method="blur")


def test_operators_never_share_splits_and_every_split_mixes_groups():
    operators = {f"E{i}": "expert" for i in range(10)} | {f"T{i}": "trainee" for i in range(10)}
    split = split_operators(operators, (0.6, 0.2, 0.2), seed=3)
    assert set(split) == set(operators)
    for name in ("val", "test"):
        members = [op for op, s in split.items() if s == name]
        assert len(members) == 4
        assert {operators[op] for op in members} == {"expert", "trainee"}
    assert sum(s == "train" for s in split.values()) == 12
    assert split == split_operators(operators, (0.6, 0.2, 0.2), seed=3)
    assert split != split_operators(operators, (0.6, 0.2, 0.2), seed=4)


def test_a_split_needs_three_operators():
    with pytest.raises(ValueError, match="needs at least 3 operators, the manifest has 2"):
        split_operators({"a": "expert", "b": "trainee"}, (0.76, 0.12, 0.12))


def test_a_spec_refuses_unknown_streams_and_classes():
    with pytest.raises(ValueError, match="unknown stream 'fr3'"):
        DatasetSpec(streams=("fr3",))
    with pytest.raises(ValueError, match="unknown label 'Heart'"):
        DatasetSpec(classes=("Heart",))
