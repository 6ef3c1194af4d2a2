"""The scenes' content: what makes the dynamic classes confusable in a still frame."""

import numpy as np

from fetal_analytics.synth.scenes import FLUID, HeartScene, make_scene

VIEW = (120, 160)
PROBE = (0.5, -0.1, 0.12)
SEEDS = range(12)


def _scene(code, seed):
    return make_scene(code, np.random.default_rng(seed), VIEW, PROBE)


def _dark_area(canvas, scene):
    """Share of the trunk section's pixels that are fluid-dark."""
    cx, cy = scene.centre
    inside = np.hypot(scene.cv.x - cx, scene.cv.y - cy) < 0.85 * scene.radius
    return float((canvas[inside] < 2.5 * FLUID).mean())


def test_only_the_heart_moves_by_itself():
    for seed in SEEDS[:4]:
        heart = _scene("HeD", seed)
        assert isinstance(heart, HeartScene)
        frames = np.stack([heart.animate(t) for t in np.linspace(0, 1 / heart.rate_hz, 8)])
        top, bottom, left, right = heart.heart.roi
        assert np.ptp(frames[:, top:bottom, left:right], axis=0).max() > 0.3
        for code in ("Ab", "Ki"):
            scene = _scene(code, seed)
            still = np.stack([scene.animate(t) for t in (0.0, 0.13, 0.41)])
            assert np.ptp(still, axis=0).max() == 0


def test_a_still_abdomen_shows_the_hearts_dark_spaces_and_the_kidney_plane_adds_kidneys():
    rng = np.random.default_rng(0)
    heart = [_dark_area(s.animate(float(rng.uniform(0, 1))), s)
             for s in (_scene("HeD", seed) for seed in SEEDS)]
    low, high = np.percentile(heart, [10, 90])
    abdomen = np.median([_dark_area(s.static, s) for s in (_scene("Ab", s) for s in SEEDS)])
    kidneys = np.median([_dark_area(s.static, s) for s in (_scene("Ki", s) for s in SEEDS)])
    cord = np.median([_dark_area(s.static, s) for s in (_scene("Um", s) for s in SEEDS)])
    assert low <= abdomen <= high
    assert kidneys > high
    assert cord < low  # the cord insertion (Bk to the models) has no such cluster
