"""The paper's tables 2 and 3 on a dataset of ours: every model trained, tested and compared.

`run_benchmark` trains every architecture of `inference.models` on a dataset of
`inference.dataset` (split subject-wise), tests each on the held-out test split and reproduces the
structure of Sharma et al. (ISBI 2019). With ``test_dataset`` the models are trained and validated
as before but tested on every instance of another dataset (its train, val and test splits
pooled), built from a separate held-out cohort; every row, table 3's join and the findings then
use that test data:

Table 2
    Each model's trainable parameter count and macro precision (P), recall (R), F1, top-1 (A1)
    and top-3 (A3) accuracy, beside the paper's values (`PAPER_TABLE2`). The 2D models (VGG-16,
    VGG-19, SonoNet at the preset's width) take the ``2d`` stream, the spatio-temporal ones the
    FR/4 clips. The feature-based models (frozen per-frame trunk) and the end-to-end Temp-Sono
    models start from the trained 2D SonoNet's weights (`inference.models.transfer_weights`),
    Sono-2DtCNN is inflated from it (`inference.models.inflate_from_2d`). "SonoNet-64 (PT)" is
    the published SonoNet (`inference.sononet.import_sononet`) on the 2D test frames, restricted
    to the classes it can name (`inference.sononet.SONONET_TO_TAXONOMY`).
Table 3
    Sono-2DtCNN trained on FR/2, FR/4 and FR/8 separately, the 2D SonoNet, and late fusion (the
    mean of the softmax probabilities, `inference.evaluation.fuse`) of stream combinations, all
    on the same test instances: the streams are joined on (scan_id, clip centre time) within the
    test data, which the dataset's ``"aligned": true`` guarantees.
Findings
    The three claims of issue 5 item 6, each computed from the metrics with its numbers
    (`Finding`): Sono-2DtCNN beats the 2D SonoNet on macro F1 and top-1; it confuses the dynamic
    classes (Ab and Ki against HeD) less; fusion of FR/2 + FR/4 + FR/8 is at least as good on top-3
    as the best single stream.

Outputs, under ``out``::

    models/<arch>-<stream>/          each training run (`inference.training.train`: model.keras
                                     + sidecar, metrics.csv, ...); an interrupted benchmark resumes
    models/<arch>-<stream>/subset/   the training subset, where the preset caps the clips
    sononet-pt/model.keras           the imported published SonoNet (when its weights are given)
    confusion-<arch>-<stream>.png    confusion matrices of the 2D SonoNet and Sono-2DtCNN (FR/4)
    results.json                     `BenchmarkResult.to_dict`

The paper's tables use the clips of its 11 classes only: a dataset whose events of other classes
were relabelled (``--others-as``, ``spec.others_as`` in ``dataset.json``) is accepted with a
warning, since its Bk then holds other anatomy too, and the markdown says how it was built.

A held-out test dataset must have the training dataset's classes (in the same order), frame size
and the streams needed, be aligned, treat other classes as it does (``others_as``), and share no
scan with it. Scans are compared by ``scan_id`` only when both ``dataset.json`` record the same
manifest (``sources.manifest``, its SHA-256) or either records none: simulated cohorts of
different seeds reuse ids such as ``SIM0001`` for different scans, so datasets of different
manifests are taken to hold different scans.

`markdown` renders a result as a section of ``BENCHMARKS.md``, between the markers `MARKER_START`
and `MARKER_END`; `fetal_analytics.markdown.write_section` puts it into the file, leaving the rest
of the file as it is.

Time: at the ``cpu`` preset (width 8, 64 x 64 frames) the defaults of `PRESET_DEFAULTS` (3 epochs
at most, 6 for the 2D SonoNet and 1 for Sono-2DtCNN, patience 3, a fixed random subset of the
training clips of each model but the 2D SonoNet) keep the whole run
within an hour on 2 CPU cores; the ``paper`` preset (width 64, every clip, up to 100 epochs,
patience 10) is meant for a GPU and a dataset built at 224 pixels. Keras is imported only inside
the functions that need it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from fetal_analytics.checks import check_choice
from fetal_analytics.errors import UserError
from fetal_analytics.markdown import markdown_table
from inference.pipeline import shard_paths
from inference.presets import MODEL_PRESETS
from inference.streams import STREAM_2D, STREAMS

__all__ = [
    "ARCH_ORDER",
    "MARKER_END",
    "MARKER_START",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "PRESET_DEFAULTS",
    "BenchmarkConfig",
    "BenchmarkError",
    "BenchmarkResult",
    "BenchmarkRow",
    "Finding",
    "PaperRow",
    "SavedResults",
    "compute_findings",
    "dataset_from_cohort",
    "dynamic_confusion",
    "evaluate_pretrained",
    "markdown",
    "read_saved_results",
    "run_benchmark",
    "table_records",
]

log = logging.getLogger(__name__)

MARKER_START = "<!-- benchmark-models:start -->"
MARKER_END = "<!-- benchmark-models:end -->"

CLIP_STREAMS = tuple(STREAMS)
#: The stream each architecture is trained and tested on in table 2 (the paper's FR/4).
TABLE2_CLIP_STREAM = "fr4"
#: Architectures in the order of the paper's table 2 (the keys of `inference.models.ARCHITECTURES`).
ARCH_ORDER: tuple[str, ...] = (
    "vgg16", "vgg19", "sononet", "feat2d_2dtcnn", "feat1d_lstm_rnn", "feat2d_clstm_rnn",
    "temp_sono_2dtcnn", "temp_sono_lstm_rcn", "temp_sono_clstm_rcn", "sono_2dtcnn",
)
ARCHS_2D = frozenset({"sononet", "vgg16", "vgg19"})
#: Architectures started from the trained 2D SonoNet (inflated: Sono-2DtCNN; others by layer name).
INIT_FROM_SONONET = frozenset(ARCH_ORDER) - ARCHS_2D
#: Architectures fine-tuned end to end from the 2D SonoNet: they train at a tenth of the paper's
#: learning rate (at 0.01 the first epochs undo the 2D weights; see `inference.training.train`).
FINE_TUNED = frozenset({"temp_sono_2dtcnn", "temp_sono_lstm_rcn", "temp_sono_clstm_rcn",
                        "sono_2dtcnn"})
FINE_TUNE_LEARNING_RATE = 0.001
PRETRAINED = "sononet_pt"
#: Taxonomy codes of the dynamic classes of finding 2 and the class they are confused with.
DYNAMIC_CLASSES = ("Ab", "Ki")
DYNAMIC_CONFUSED_WITH = "HeD"

#: Training defaults per preset: maximum epochs, early-stopping patience, and per architecture
#: the most training clips (a fixed random subset, stratified by class; validation gets a
#: quarter as many); None or a missing architecture: every clip.
PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    # Measured on 2 cores: the 2D models train at ~200 clips/s, the end-to-end 2D+t ones at only
    # ~10-18 clips/s (3D and per-frame backpropagation), so those see few clips; they start from
    # the trained 2D SonoNet (transfer / inflation), which is what makes so few enough.
    # The 2D SonoNet, which every other model starts from, gets every clip and 6 epochs: at 3
    # epochs on 3000 frames it was far from converged (held-out top-1 0.21). Sono-2DtCNN sees
    # 2400 clips once rather than 800 three times: more distinct clips, as the demo model's
    # fine-tuning (every clip, one epoch), which is what beats the 2D start.
    "cpu": {"epochs": 3, "patience": 3, "epochs_per_arch": {"sononet": 6, "sono_2dtcnn": 1},
            "max_clips": {"sononet": None, "vgg16": 3000, "vgg19": 3000,
                          "feat2d_2dtcnn": 1000, "feat1d_lstm_rnn": 1000,
                          "feat2d_clstm_rnn": 1000, "temp_sono_2dtcnn": 400,
                          "temp_sono_lstm_rcn": 400, "temp_sono_clstm_rcn": 400,
                          "sono_2dtcnn": 2400}},
    "paper": {"epochs": 100, "patience": 10, "epochs_per_arch": {}, "max_clips": {}},
}


class BenchmarkError(UserError, ValueError):
    """The dataset or the options cannot make the benchmark (streams, alignment, names)."""


# ---------------------------------------------------------------------------------------------
# The paper's values


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's table 2 or 3.

    Attributes
    ----------
    name : str
        The model as the paper names it.
    params : float or None
        Parameters (the paper's "Params"; None where it says NA or gives none).
    precision, recall, f1, top1, top3 : float
        P, R, F1, A1, A3 (macro averages; top-1 and top-3 accuracy).
    """

    name: str
    params: float | None
    precision: float
    recall: float
    f1: float
    top1: float
    top3: float


#: Table 2 of Sharma et al. (ISBI 2019), by our architecture name ("sononet_pt": the published
#: SonoNet-64 on the classes it shares with the dataset).
PAPER_TABLE2: dict[str, PaperRow] = {
    "vgg16": PaperRow("VGGNet-16", 134.3e6, 0.45, 0.32, 0.33, 0.47, 0.76),
    "vgg19": PaperRow("VGGNet-19", 139.6e6, 0.36, 0.29, 0.30, 0.45, 0.77),
    PRETRAINED: PaperRow("SonoNet-64 (PT)", None, 0.52, 0.48, 0.46, 0.55, 0.55),
    "sononet": PaperRow("SonoNet-64", 14.8e6, 0.71, 0.52, 0.56, 0.69, 0.91),
    "feat2d_2dtcnn": PaperRow("Feat2D-2DtCNN", 2.6e6, 0.64, 0.57, 0.59, 0.68, 0.86),
    "feat1d_lstm_rnn": PaperRow("Feat1D-LSTM-RNN", 2.6e6, 0.67, 0.52, 0.54, 0.68, 0.87),
    "feat2d_clstm_rnn": PaperRow("Feat2D-CLSTM-RNN", 5.7e6, 0.68, 0.57, 0.60, 0.71, 0.85),
    "temp_sono_2dtcnn": PaperRow("Temp-Sono-2DtCNN", 15.5e6, 0.48, 0.44, 0.43, 0.62, 0.84),
    "temp_sono_lstm_rcn": PaperRow("Temp-Sono-LSTM-RCN", 15.7e6, 0.58, 0.41, 0.39, 0.58, 0.82),
    "temp_sono_clstm_rcn": PaperRow("Temp-Sono-CLSTM-RCN", 16.2e6, 0.55, 0.39, 0.41, 0.58, 0.82),
    "sono_2dtcnn": PaperRow("Sono-2DtCNN", 23.0e6, 0.73, 0.66, 0.66, 0.75, 0.93),
}

#: Table 3 of the paper, by stream combination. The paper's "multi-stream late fusion" is taken
#: to be FR/2 + FR/4 + FR/8 (section 3.2: short- and long-term temporal dynamics combined).
PAPER_TABLE3: dict[tuple[str, ...], PaperRow] = {
    ("2d",): PaperRow("2D stream", None, 0.71, 0.52, 0.56, 0.69, 0.91),
    ("fr2",): PaperRow("2D + t stream @ FR/2", None, 0.63, 0.59, 0.58, 0.70, 0.89),
    ("fr4",): PaperRow("2D + t stream @ FR/4", None, 0.73, 0.66, 0.66, 0.75, 0.93),
    ("fr8",): PaperRow("2D + t stream @ FR/8", None, 0.77, 0.66, 0.67, 0.77, 0.92),
    ("fr2", "fr4", "fr8"): PaperRow("Multi-stream late fusion", None, 0.77, 0.65, 0.66, 0.76,
                                    0.94),
}

_STREAM_NAMES = {"2d": "2D", "fr2": "FR/2", "fr4": "FR/4", "fr8": "FR/8"}


# ---------------------------------------------------------------------------------------------
# Configuration and results


@dataclass(frozen=True)
class BenchmarkConfig:
    """What to train and how.

    Attributes
    ----------
    preset : {"cpu", "paper"}
        Build parameters (`inference.presets.MODEL_PRESETS`) and training defaults
        (`PRESET_DEFAULTS`).
    archs : sequence of str
        Architectures of table 2 (default all, in the paper's order). The 2D SonoNet is trained
        whenever a model starts from it, and Sono-2DtCNN whenever table 3 is wanted.
    epochs, patience : int or None
        Maximum epochs (every model) and early-stopping patience; None: the preset's (its
        ``epochs_per_arch`` over its ``epochs``).
    max_clips : int, mapping or None
        Training clips per model, a fixed random subset stratified by class (validation: a
        quarter as many); an int for every model, a mapping architecture -> int or None (None:
        all clips; a missing architecture: the preset's value); None: the preset's values.
    width : int or None
        Base width over the preset's.
    batch_size, seed : int
    dropout : float
    streams : sequence of str
        Clip streams of table 3 (Sono-2DtCNN is trained on each); empty: no table 3.
    fusions : sequence of sequence of str or None
        Stream combinations fused in table 3; None: every pair and the triple of `streams`,
        and all of `streams` with the 2D stream.
    """

    preset: str = "cpu"
    archs: tuple[str, ...] = ARCH_ORDER
    epochs: int | None = None
    patience: int | None = None
    max_clips: int | Mapping[str, int | None] | None = None
    width: int | None = None
    batch_size: int = 16
    seed: int = 0
    dropout: float = 0.5
    streams: tuple[str, ...] = CLIP_STREAMS
    fusions: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        _choose("preset", self.preset, PRESET_DEFAULTS)
        archs = tuple(self.archs)
        if not archs:
            raise BenchmarkError("`archs` is empty: name at least one architecture")
        for arch in archs:
            _choose("arch", arch, ARCH_ORDER)
        for stream in self.streams:
            _choose("stream", stream, CLIP_STREAMS)
        for name in ("epochs", "patience", "width", "batch_size"):
            value = getattr(self, name)
            low = 0 if name == "patience" else 1
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < low):
                raise BenchmarkError(f"`{name}` must be an integer >= {low}, got {value!r}")
        if isinstance(self.max_clips, int) and self.max_clips < 1:
            raise BenchmarkError(f"`max_clips` must be >= 1, got {self.max_clips!r}")
        object.__setattr__(self, "archs", tuple(a for a in ARCH_ORDER if a in archs))
        object.__setattr__(self, "streams", tuple(s for s in CLIP_STREAMS if s in self.streams))
        if self.fusions is not None:
            fusions = tuple(tuple(s for s in (STREAM_2D, *CLIP_STREAMS) if s in combo)
                            for combo in self.fusions)
            for combo, given in zip(fusions, self.fusions, strict=True):
                if len(combo) < 2 or len(combo) != len(set(given)):
                    raise BenchmarkError(f"a fusion needs two or more known streams, got "
                                         f"{tuple(given)!r}")
            object.__setattr__(self, "fusions", fusions)

    def epochs_for(self, arch: str) -> int:
        """The most epochs of `arch`: `epochs`, or the preset's."""
        defaults = PRESET_DEFAULTS[self.preset]
        return self.epochs or defaults["epochs_per_arch"].get(arch, defaults["epochs"])

    @property
    def resolved_patience(self) -> int:
        """`patience`, or the preset's."""
        default = PRESET_DEFAULTS[self.preset]["patience"]
        return default if self.patience is None else self.patience

    def clips_for(self, arch: str) -> int | None:
        """The most training clips of `arch` (None: all)."""
        defaults = PRESET_DEFAULTS[self.preset]["max_clips"]
        if isinstance(self.max_clips, int):
            return self.max_clips
        if isinstance(self.max_clips, Mapping) and arch in self.max_clips:
            return self.max_clips[arch]
        return defaults.get(arch)

    def fusion_combos(self) -> tuple[tuple[str, ...], ...]:
        """The stream combinations of table 3's fusion rows."""
        if self.fusions is not None:
            return self.fusions
        pairs = tuple(combinations(self.streams, 2))
        combos = pairs + ((self.streams,) if len(self.streams) > 2 else ())
        if self.streams and "sononet" in self.archs:
            combos += ((STREAM_2D, *self.streams),)
        return combos

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the resolved epochs and clip caps per architecture and the
        patience."""
        record = asdict(self)
        record["max_clips"] = {a: self.clips_for(a) for a in self.archs}
        record["epochs"] = {a: self.epochs_for(a) for a in self.archs}
        record["patience"] = self.resolved_patience
        return record


@dataclass(frozen=True)
class BenchmarkRow:
    """One model, or one stream combination, on the test data.

    Attributes
    ----------
    key : str
        ``<arch>-<stream>`` (a trained model), ``sononet_pt-2d`` or the fused streams joined by
        ``+`` (e.g. ``fr2+fr4+fr8``).
    name : str
        The row's name in the paper's terms.
    arch : str or None
        Architecture (None for a fusion).
    streams : tuple of str
        The stream(s) the row's probabilities come from.
    width : int or None
        Base width of the model.
    params, params_total : int or None
        Trainable and total parameters of the model (None: not applicable).
    precision, recall, f1, top1, top3 : float or None
        Macro P, R, F1 and top-1/top-3 accuracy (None: not computed, e.g. no weights given).
    n : int
        Test instances.
    paper : PaperRow or None
        The paper's row, where it has one.
    train_s, eval_s : float or None
        Wall time of training (summed over resumed runs) and of testing, seconds.
    epochs_run, best_epoch : int or None
    init : str
        How the weights started (``random``, ``transfer: <path>``, ``inflate: <path>``,
        ``published``, ``fusion``).
    model_path : Path or None
    note : str
    confusion : pandas.DataFrame or None
        Test confusion counts, rows true, columns predicted.
    """

    key: str
    name: str
    arch: str | None
    streams: tuple[str, ...]
    width: int | None = None
    params: int | None = None
    params_total: int | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    top1: float | None = None
    top3: float | None = None
    n: int = 0
    paper: PaperRow | None = None
    train_s: float | None = None
    eval_s: float | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    init: str = "random"
    model_path: Path | None = None
    note: str = ""
    confusion: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``confusion`` as ``{"classes": [...], "matrix": [[...]]}``."""
        record = {k: getattr(self, k) for k in (
            "key", "name", "arch", "width", "params", "params_total", "precision", "recall",
            "f1", "top1", "top3", "n", "train_s", "eval_s", "epochs_run", "best_epoch", "init",
            "note")}
        record["streams"] = list(self.streams)
        record["model_path"] = None if self.model_path is None else str(self.model_path)
        record["paper"] = None if self.paper is None else asdict(self.paper)
        record["confusion"] = (None if self.confusion is None else
                               {"classes": [str(c) for c in self.confusion.index],
                                "matrix": self.confusion.to_numpy().astype(int).tolist()})
        return record


@dataclass(frozen=True)
class Finding:
    """One claim of the paper, checked on our results.

    Attributes
    ----------
    key : str
    claim : str
    holds : bool or None
        None when it cannot be computed (a model not trained, a class without test samples).
    detail : str
        The numbers, in words (or, when `holds` is None, what is missing).
    values : dict
        The numbers.
    """

    key: str
    claim: str
    holds: bool | None
    detail: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkResult:
    """What `run_benchmark` produced.

    Attributes
    ----------
    dataset, out : Path
    config : BenchmarkConfig
    table2, table3 : list of BenchmarkRow
        In the paper's order; table 3's rows all on the same `n_common` test instances.
    findings : list of Finding
    confusion_pngs : dict
        Row key -> PNG path.
    n_common : int
        Test instances shared by table 3's streams.
    wall_s : float
        Wall time of the whole call, seconds.
    started : str
        ISO 8601 start time (UTC).
    environment : dict
        Keras version and backend, devices, CPU count, platform.
    dataset_summary : dict
        Scans and operators per split, test instances per stream, frame size, classes (of the
        training dataset).
    test_dataset : Path or None
        The held-out dataset the models were tested on (all its splits); None: the test split of
        `dataset`.
    test_data : dict
        What the models were tested on: ``dataset``, ``splits``, ``held_out``, ``scans``,
        ``instances`` (per stream, all those splits), ``label`` (e.g. "the test split") and
        ``description`` (a sentence fragment naming the folder and the instances).
    """

    dataset: Path
    out: Path
    config: BenchmarkConfig
    table2: list[BenchmarkRow]
    table3: list[BenchmarkRow]
    findings: list[Finding]
    confusion_pngs: dict[str, Path]
    n_common: int
    wall_s: float
    started: str
    environment: dict[str, Any]
    dataset_summary: dict[str, Any]
    test_dataset: Path | None = None
    test_data: dict[str, Any] = field(default_factory=dict)

    def row(self, key: str) -> BenchmarkRow:
        """The row of table 2 or 3 with this key."""
        for row in (*self.table2, *self.table3):
            if row.key == key:
                return row
        raise KeyError(f"no row {key!r}; rows: {[r.key for r in (*self.table2, *self.table3)]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what ``results.json`` holds); NaN becomes None."""
        return _no_nan({"dataset": str(self.dataset), "out": str(self.out),
                "config": self.config.to_dict(), "started": self.started,
                "wall_s": self.wall_s, "environment": self.environment,
                "dataset_summary": self.dataset_summary,
                "test_dataset": None if self.test_dataset is None else str(self.test_dataset),
                "test_data": self.test_data,
                "table2": [r.to_dict() for r in self.table2],
                "table3": [r.to_dict() for r in self.table3], "n_common": self.n_common,
                "findings": [asdict(f) for f in self.findings],
                "confusion_pngs": {k: str(v) for k, v in self.confusion_pngs.items()}})


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Helpers


def _choose(what: str, value: Any, valid: Sequence[str] | Mapping[str, Any]) -> None:
    check_choice(what, value, valid, error=BenchmarkError)


def _stream_of(arch: str) -> str:
    return STREAM_2D if arch in ARCHS_2D else TABLE2_CLIP_STREAM


def _key(keys_scan: np.ndarray, keys_t: np.ndarray) -> list[tuple[str, int]]:
    """Instance identities: (scan_id, clip centre in whole milliseconds)."""
    return [(str(s), round(float(t) * 1000)) for s, t in zip(keys_scan, keys_t, strict=True)]


@dataclass(frozen=True)
class _TestData:
    """What the models are tested on: splits of one dataset folder, pooled in this order."""

    folder: Path
    splits: tuple[str, ...]
    meta: dict[str, Any]
    held_out: bool

    def splits_of(self, stream: str) -> list[str]:
        """The splits with shards of `stream`."""
        return [s for s in self.splits if shard_paths(self.folder, s, stream)]

    def summary(self, streams: Sequence[str]) -> dict[str, Any]:
        """`BenchmarkResult.test_data`."""
        counts = self.meta.get("counts", {})
        instances = {st: int(sum(sum(counts.get(sp, {}).get(st, {}).values())
                                 for sp in self.splits))
                     for st in (STREAM_2D, *CLIP_STREAMS) if st in streams}
        scans = sum(len(self.meta["splits"].get(sp, {}).get("scans", [])) for sp in self.splits)
        record = {"dataset": str(self.folder), "splits": list(self.splits),
                  "held_out": self.held_out, "scans": scans, "instances": instances}
        label, description = _tested_on(record)
        return {**record, "label": label, "description": description}


def _tested_on(test_data: Mapping[str, Any], *, code: bool = False) -> tuple[str, str]:
    """A short label ("the test split") and a description of the test data (`_TestData.summary`)
    naming the folder and the instances; `code`: the folder in markdown backticks."""
    folder = f"`{test_data['dataset']}`" if code else test_data["dataset"]
    instances = test_data.get("instances") or {}
    if len(set(instances.values())) == 1:
        n = f"{next(iter(instances.values()))} instances"
    else:
        n = ", ".join(f"{v} {_STREAM_NAMES[k]}" for k, v in instances.items()) + " instances"
    scans = test_data.get("scans")
    scans = f"{scans} scan{'' if scans == 1 else 's'}"
    if test_data.get("held_out"):
        return (f"the held-out {folder} (all splits)",
                f"{n} from {folder} (all splits pooled: {scans} of a held-out cohort)")
    return "the test split", f"the test split of {folder} ({n}, {scans})"


def _test_keys(test: _TestData, stream: str) -> list[tuple[str, int]]:
    """The (scan_id, t_ms) of every test instance of a stream, in split and shard order."""
    keys: list[tuple[str, int]] = []
    for split in test.splits_of(stream):
        for shard in shard_paths(test.folder, split, stream):
            with np.load(shard) as data:
                keys += _key(data["scan_id"], data["t_s"])
    return keys


def _evaluate(model_path: Path, test: _TestData, stream: str) -> Any:
    """`inference.evaluation.evaluate` over each split of the test data, pooled: the metrics
    (`_metric_fields`), the probabilities and the labels, in the order of `_test_keys`."""
    from inference.evaluation import evaluate

    probs, labels = [], []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "some classes are never predicted", RuntimeWarning)
        for split in test.splits_of(stream):
            part = evaluate(model_path, test.folder, split=split, stream=stream)
            probs.append(part.probabilities)
            labels.append(part.labels)
            classes = part.classes
    if not labels:
        raise BenchmarkError(f"{test.folder}: no {stream} clips in {', '.join(test.splits)}")
    probabilities, y = np.concatenate(probs), np.concatenate(labels)
    return _metrics(y, probabilities, classes), probabilities, y


def _metrics(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> Any:
    from inference.evaluation import classification_metrics

    with warnings.catch_warnings():  # classes missing from a small test split count as 0
        warnings.filterwarnings("ignore", "some classes are never predicted", RuntimeWarning)
        return classification_metrics(y_true, probs, classes)


def _metric_fields(m: Any) -> dict[str, Any]:
    return {"precision": float(m.precision), "recall": float(m.recall), "f1": float(m.f1),
            "top1": float(m.top1), "top3": float(m.top3), "n": int(m.n),
            "confusion": m.confusion}


def _subset(dataset: Path, stream: str, max_clips: int | None, seed: int, folder: Path) -> Path:
    """`dataset` itself, or a folder holding a stratified random subset of its train and val
    clips of `stream` (at most `max_clips` and a quarter of that) when it has more."""
    from inference.pipeline import load_metadata

    meta = load_metadata(dataset)
    n_train = sum(meta["counts"]["train"][stream].values())
    if max_clips is None or n_train <= max_clips:
        return dataset
    caps = {"train": max_clips, "val": max(1, max_clips // 4)}
    record = {"of": str(dataset.resolve()), "dataset_sha256": meta.get("dataset_sha256"),
              "stream": stream, "caps": caps, "seed": seed, "stratified": "by class"}
    marker = folder / "dataset.json"
    if marker.is_file() and json.loads(marker.read_text()).get("subset") == record:
        return folder
    rng = np.random.default_rng([seed, CLIP_STREAMS.index(stream) if stream in CLIP_STREAMS
                                 else len(CLIP_STREAMS)])
    counts = dict(meta["counts"])
    for split, cap in caps.items():
        shards = shard_paths(dataset, split, stream)
        labels = []
        for shard in shards:
            with np.load(shard) as data:
                labels.append(data["y"].astype(np.int64))
        y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        chosen = _stratified(y, cap, rng)
        xs, ys, scans, ts = [], [], [], []
        offset = 0
        for shard, part in zip(shards, labels, strict=True):
            rows = chosen[(chosen >= offset) & (chosen < offset + len(part))] - offset
            offset += len(part)
            if len(rows):
                with np.load(shard) as data:
                    xs.append(data["x"][rows])
                    ys.append(data["y"][rows])
                    scans.append(data["scan_id"][rows])
                    ts.append(data["t_s"][rows])
        target = folder / split / stream
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("shard-*.npz"):
            old.unlink()
        if xs:
            np.savez_compressed(target / "shard-00000.npz", x=np.concatenate(xs),
                                y=np.concatenate(ys), scan_id=np.concatenate(scans),
                                t_s=np.concatenate(ts))
        classes = meta["classes"]
        kept = np.bincount(y[chosen], minlength=len(classes)) if len(y) else []
        counts[split] = {**counts.get(split, {}),
                         stream: {classes[i]: int(n) for i, n in enumerate(kept) if n}}
        log.info("%s/%s: a subset of %d of %d clips in %s", split, stream, len(chosen), len(y),
                 folder)
    subset_meta = {**meta, "streams": {stream: meta["streams"][stream]}, "counts": counts,
                   "subset": record}
    marker.write_text(json.dumps(subset_meta, indent=2))
    return folder


def _subset_note(dataset: Path, data: Path, stream: str) -> str:
    if data == dataset:
        return ""
    from inference.pipeline import load_metadata

    used = sum(load_metadata(data)["counts"]["train"][stream].values())
    of = sum(load_metadata(dataset)["counts"]["train"][stream].values())
    return f"trained on a random {used} of the {of} training clips"


def _stratified(y: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices: at most about `cap` rows, each class in proportion (at least 1)."""
    if len(y) <= cap:
        return np.arange(len(y))
    chosen = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        k = min(len(rows), max(1, int(cap * len(rows) / len(y))))
        chosen.append(rng.choice(rows, size=k, replace=False))
    return np.sort(np.concatenate(chosen))


def _environment() -> dict[str, Any]:
    import keras

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = {"keras": keras.__version__, "backend": keras.backend.backend(), "cpu_count": cpus,
           "platform": platform.platform(), "python": platform.python_version()}
    if env["backend"] == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
        env["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    return env


def _dataset_summary(meta: dict[str, Any]) -> dict[str, Any]:
    return {"size": int(meta["spec"]["size"]), "classes": list(meta["classes"]),
            "aligned": bool(meta.get("aligned")), "others_as": _others_as(meta),
            "scans": {s: len(v.get("scans", [])) for s, v in meta["splits"].items()},
            "operators": {s: len(v.get("operators", [])) for s, v in meta["splits"].items()},
            "instances": {split: {stream: int(sum(c.values())) for stream, c in by.items()}
                          for split, by in meta["counts"].items()}}


# ---------------------------------------------------------------------------------------------
# The published SonoNet


def evaluate_pretrained(model_path: str | Path, dataset: str | Path, *,
                        split: str | Sequence[str] = "test",
                        batch_size: int = 32) -> tuple[Any, list[tuple[str, int]], int]:
    """The published SonoNet on a dataset's 2D frames, on the classes it can name.

    Each square frame is resized to SonoNet's 224 x 288 and normalised as SonoNet expects
    (`inference.roi.preprocess` over the whole frame: greyscale, bilinear enlargement,
    ``255 * (x - mean) / std``). SonoNet's 14 probabilities are summed per taxonomy code
    (`inference.sononet.SONONET_TO_TAXONOMY`: e.g. 3VV, 4CH, LVOT and RVOT -> HeD), keeping the
    dataset's classes that some SonoNet class maps to; test frames of other classes (3Dm, MaD)
    are left out.

    Parameters
    ----------
    model_path : path
        The ``.keras`` file written by `inference.sononet.import_sononet`.
    dataset : path
        A dataset with a ``2d`` stream.
    split : {'train', 'val', 'test'} or sequence of them
        Several splits are pooled, in their order (a held-out dataset: all three).
    batch_size : int

    Returns
    -------
    metrics : inference.evaluation.ClassificationMetrics
        Over the overlapping classes (in the dataset's order).
    keys : list of (str, int)
        (scan_id, centre in ms) of the frames kept.
    excluded : int
        Frames left out (their class has no SonoNet class).
    """
    from inference.model_file import load_model
    from inference.pipeline import load_metadata
    from inference.roi import ImageArea, preprocess

    loaded = load_model(model_path)
    meta = load_metadata(dataset)
    classes = list(meta["classes"])
    overlap = [c for c in classes if c in set(loaded.codes)]
    if not overlap:
        raise BenchmarkError(f"{model_path} names none of the classes of {dataset}")
    columns = [[k for k, code in enumerate(loaded.codes) if code == c] for c in overlap]
    remap = {classes.index(c): j for j, c in enumerate(overlap)}
    height, width = loaded.input_shape[:2]
    splits = (split,) if isinstance(split, str) else tuple(split)
    shards = [shard for s in splits
              for shard in shard_paths(dataset, s, STREAM_2D)]
    probs, labels, keys, excluded = [], [], [], 0
    for shard in shards:
        with np.load(shard) as data:
            x, y = data["x"], data["y"].astype(np.int64)
            shard_keys = _key(data["scan_id"], data["t_s"])
        keep = np.array([int(v) in remap for v in y], dtype=bool)
        excluded += int((~keep).sum())
        area = ImageArea(0, 0, int(x.shape[2]), int(x.shape[1]))
        rows = np.flatnonzero(keep)
        for i in range(0, len(rows), batch_size):
            batch = np.stack([preprocess(x[r], area, (height, width))
                              for r in rows[i:i + batch_size]])
            p = np.asarray(loaded.model.predict_on_batch(batch), dtype=np.float64)
            probs.append(np.stack([p[:, cols].sum(axis=1) for cols in columns], axis=1))
        labels += [remap[int(v)] for v in y[keep]]
        keys += [shard_keys[r] for r in rows]
    if not labels:
        raise BenchmarkError(f"{dataset}: no {'/'.join(splits)} frame of a class SonoNet can "
                             "name")
    return _metrics(np.array(labels), np.concatenate(probs), overlap), keys, excluded


# ---------------------------------------------------------------------------------------------
# Datasets


def dataset_from_cohort(cohort: str | Path, out: str | Path, *, preset: str = "cpu",
                        seed: int = 0, on_scan: Callable[[str], None] | None = None) -> Path:
    """The benchmark's dataset of a simulated cohort, built once into `out`.

    Parameters
    ----------
    cohort : path
        A folder written by `fetal_analytics.synth.write_cohort` (``manifest.csv``,
        ``manual_labels.csv`` and the videos).
    out : path
        Dataset folder; a dataset already there is reused when it is aligned, has the four
        streams and the preset's frame size.
    preset : {"cpu", "paper"}
        The frame size: the preset's input height (64 or 224 pixels).
    seed : int
        Seed of the subject-wise split.
    on_scan : callable, optional
        Called with each scan id (progress).

    Returns
    -------
    Path
        `out`.

    Raises
    ------
    BenchmarkError
        The cohort lacks its manifest or labels, or `out` holds a dataset that does not fit.
    """
    from inference.dataset import DatasetSpec, build_dataset
    from inference.pipeline import load_metadata

    _choose("preset", preset, MODEL_PRESETS)
    cohort, out = Path(cohort), Path(out)
    size = int(MODEL_PRESETS[preset]["input_shape"][0])
    streams = (*CLIP_STREAMS, STREAM_2D)
    if (out / "dataset.json").is_file():
        meta = load_metadata(out)
        if (meta.get("aligned") and set(streams) <= set(meta["streams"])
                and int(meta["spec"]["size"]) == size):
            log.info("reusing the dataset in %s", out)
            return out
        raise BenchmarkError(f"{out} holds a dataset that does not fit (it must be aligned, "
                             f"have streams {','.join(streams)} and {size}-pixel frames): "
                             "delete it or choose another --out")
    for name in ("manifest.csv", "manual_labels.csv"):
        if not (cohort / name).is_file():
            raise BenchmarkError(f"{cohort / name} not found: pass a folder written by "
                                 "`fetal-analytics simulate` (with videos)")
    spec = DatasetSpec(size=size, streams=streams, seed=seed)
    build_dataset(cohort / "manifest.csv", cohort / "manual_labels.csv", out, spec=spec,
                  on_scan=on_scan)
    return out


def _check_dataset(dataset: Path, config: BenchmarkConfig, needed: set[str],
                   splits: Sequence[str] = ("train", "val", "test")) -> dict[str, Any]:
    from inference.pipeline import load_metadata

    try:
        meta = load_metadata(dataset)
    except FileNotFoundError as exc:
        raise BenchmarkError(str(exc)) from exc
    missing = sorted(needed - set(meta["streams"]))
    if missing:
        raise BenchmarkError(f"{dataset} lacks the streams {', '.join(missing)}: rebuild it with "
                             "`fetal-analytics dataset build --streams fr2,fr4,fr8,2d`")
    if config.streams and not meta.get("aligned"):
        raise BenchmarkError(
            f"{dataset} is not aligned (built before every stream's clips were centred on the "
            "same times), so its streams' test instances cannot be fused: rebuild it with "
            "`fetal-analytics dataset build`")
    for split in splits:
        for stream in needed:
            if not shard_paths(dataset, split, stream):
                raise BenchmarkError(f"{dataset}: no {split} clips in stream {stream!r}")
    others_as = _others_as(meta)
    if others_as is not None:
        log.warning("%s relabels the events of classes outside its own as %s (built with "
                    "--others-as): the paper's tables use only the clips of the classes they "
                    "name, so %s holds other anatomy here (umbilical cord, feet, ...) and the "
                    "tables differ from the paper's protocol; build the dataset without "
                    "--others-as",
                    dataset, others_as, others_as)
    return meta


def _others_as(meta: dict[str, Any]) -> str | None:
    """The class a dataset gave the events of other classes (``--others-as``), None when
    they were left out."""
    return (meta.get("spec") or {}).get("others_as")


def _built_with(meta: dict[str, Any]) -> str:
    code = _others_as(meta)
    return ("without --others-as (other classes left out)" if code is None else
            f"with --others-as {code}")


def _scan_ids(meta: dict[str, Any]) -> set[str]:
    return {str(s) for split in meta.get("splits", {}).values() for s in split.get("scans", [])}


def _check_test_dataset(test_dir: Path, dataset: Path, meta: dict[str, Any],
                        needed: set[str]) -> _TestData:
    """A held-out test dataset that fits the models trained on `dataset` (module docstring)."""
    from inference.dataset import SPLITS
    from inference.pipeline import load_metadata

    what = f"the test dataset {test_dir}"
    if test_dir.resolve() == dataset.resolve():
        raise BenchmarkError(f"{what} is the training dataset itself: pass a dataset built from "
                             "a held-out cohort")
    try:
        test_meta = load_metadata(test_dir)
    except FileNotFoundError as exc:
        raise BenchmarkError(f"{what}: {exc}") from exc
    ours, theirs = list(meta["classes"]), list(test_meta["classes"])
    if theirs != ours:
        lacks = [c for c in ours if c not in theirs]
        extra = [c for c in theirs if c not in ours]
        differs = "; ".join(part for part in (
            lacks and f"lacks {', '.join(lacks)}", extra and f"has {', '.join(extra)} too")
            if part) or f"another order: {', '.join(theirs)}"
        raise BenchmarkError(f"{what} has other classes than {dataset} ({differs}): the models "
                             f"output {', '.join(ours)}; build it with the same classes")
    size, test_size = int(meta["spec"]["size"]), int(test_meta["spec"]["size"])
    if test_size != size:
        raise BenchmarkError(f"{what} has {test_size}-pixel frames but {dataset} has {size}: "
                             f"rebuild it with `fetal-analytics dataset build --size {size}`")
    missing = sorted(needed - set(test_meta["streams"]))
    if missing:
        raise BenchmarkError(f"{what} lacks the streams {', '.join(missing)}: rebuild it with "
                             "`fetal-analytics dataset build --streams "
                             f"{','.join(sorted(needed))}`")
    if not test_meta.get("aligned"):
        raise BenchmarkError(f"{what} is not aligned (built before every stream's clips were "
                             "centred on the same times): rebuild it with "
                             "`fetal-analytics dataset build`")
    if _others_as(test_meta) != _others_as(meta):
        raise BenchmarkError(f"{what} was built {_built_with(test_meta)} but {dataset} "
                             f"{_built_with(meta)}: the models would be tested on another "
                             "meaning of a class; build both the same way")
    manifest = (meta.get("sources") or {}).get("manifest")
    test_manifest = (test_meta.get("sources") or {}).get("manifest")
    if manifest is None or test_manifest is None or manifest == test_manifest:
        shared = sorted(_scan_ids(meta) & _scan_ids(test_meta))
        if shared:
            why = ("both were built from the same manifest" if manifest == test_manifest
                   else "a dataset.json records no manifest, so scan ids are compared")
            raise BenchmarkError(
                f"{what} shares {len(shared)} scan{'s' if len(shared) > 1 else ''} with "
                f"{dataset} ({', '.join(shared[:5])}{', ...' if len(shared) > 5 else ''}; {why}): "
                "held-out test data must hold no scan the models were trained or validated on")
    test = _TestData(test_dir, tuple(SPLITS), test_meta, held_out=True)
    for stream in sorted(needed):
        if not test.splits_of(stream):
            raise BenchmarkError(f"{what}: no clips in stream {stream!r} in any split")
    return test


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class _Outputs:
    """A tested model's probabilities on the test data, with the instances' identities."""

    row: BenchmarkRow
    probabilities: np.ndarray
    labels: np.ndarray
    keys: list[tuple[str, int]]


def run_benchmark(dataset_dir: str | Path, out_dir: str | Path, *,
                  config: BenchmarkConfig | None = None,
                  sononet_npz: str | Path | None = None,
                  test_dataset: str | Path | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> BenchmarkResult:
    """Train, test and compare every model: the paper's tables 2 and 3 and its claims.

    Parameters
    ----------
    dataset_dir : path
        A dataset of `inference.dataset.build_dataset` with the streams ``2d`` (2D models),
        ``fr4`` (table 2's temporal models) and ``config.streams`` (table 3), built with aligned
        streams (``"aligned": true`` in ``dataset.json``) when table 3 fuses them.
    out_dir : path
        Output folder (module docstring). A run interrupted or repeated with the same
        configuration resumes: finished models are not trained again.
    config : BenchmarkConfig, optional
    sononet_npz : path, optional
        The published SonoNet weights (``SonoNet16.npz``) for the "SonoNet-64 (PT)" row; without
        them the row has no metrics.
    test_dataset : path, optional
        Test on every instance of this dataset (its train, val and test splits pooled) instead of
        the test split of `dataset_dir`: a dataset of a separate, held-out cohort with the same
        classes, frame size and the needed streams, aligned, sharing no scan with `dataset_dir`
        (compared by scan id when both were built from the same manifest). Training and
        validation are unchanged (a finished model is not retrained for another test dataset).
    progress : callable, optional
        Called as ``progress(description, done, total)`` before each step and once at the end.

    Returns
    -------
    BenchmarkResult
        Also written to ``out_dir/results.json``.

    Raises
    ------
    BenchmarkError
        The dataset lacks a stream, is not aligned, or has no clips in a split; the weights file
        is missing; the test dataset does not fit or is not held out.
    """
    import keras

    from inference.evaluation import fuse, save_confusion_png
    from inference.model_file import sidecar_path
    from inference.training import LEARNING_RATE, train

    config = config or BenchmarkConfig()
    dataset, out = Path(dataset_dir), Path(out_dir)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    archs = list(config.archs)
    if config.streams and "sono_2dtcnn" not in archs:
        archs.append("sono_2dtcnn")
    if any(a in INIT_FROM_SONONET for a in archs) and "sononet" not in archs:
        log.info("training the 2D SonoNet too: the other models start from it")
        archs.append("sononet")
    archs = [a for a in ARCH_ORDER if a in archs]
    # The 2D SonoNet first (the others start from it), then table 2's order, then table 3's.
    plan = [(a, _stream_of(a)) for a in sorted(archs, key=lambda a: a != "sononet")]
    plan += [("sono_2dtcnn", s) for s in config.streams if s != TABLE2_CLIP_STREAM]
    needed = {s for _, s in plan}
    if sononet_npz is not None:
        needed.add(STREAM_2D)
        if not Path(sononet_npz).is_file():
            raise BenchmarkError(f"{sononet_npz}: no such file (the published SonoNet weights)")
    if test_dataset is None:
        meta = _check_dataset(dataset, config, needed)
        test = _TestData(dataset, ("test",), meta, held_out=False)
    else:  # the training dataset's test split is not used
        meta = _check_dataset(dataset, config, needed, splits=("train", "val"))
        test = _check_test_dataset(Path(test_dataset), dataset, meta, needed)
    classes = list(meta["classes"])
    size = int(meta["spec"]["size"])
    preset_size = MODEL_PRESETS[config.preset]["input_shape"][0]
    if size != preset_size:
        log.warning("%s has %d-pixel frames; the %s preset's models take %d (the dataset's size "
                    "is used)", dataset, size, config.preset, preset_size)
    width = config.width or int(MODEL_PRESETS[config.preset]["width"])
    total = len(plan) + (sononet_npz is not None)
    done = 0

    def step(description: str) -> None:
        nonlocal done
        log.info("[%d/%d] %s", done + 1, total, description)
        if progress:
            progress(description, done, total)
        done += 1

    outputs: dict[tuple[str, str], _Outputs] = {}
    sononet_model: Path | None = None
    for arch, stream in plan:
        key = f"{arch}-{stream}"
        step(f"{key}: training")
        folder = out / "models" / key
        init_from = sononet_model if arch in INIT_FROM_SONONET else None
        init = ("random" if init_from is None else
                f"{'inflate' if arch == 'sono_2dtcnn' else 'transfer'}: {init_from}")
        fine_tuned = init_from is not None and arch in FINE_TUNED
        learning_rate = FINE_TUNE_LEARNING_RATE if fine_tuned else LEARNING_RATE
        fingerprint = {"arch": arch, "stream": stream, "preset": config.preset, "width": width,
                       "batch_size": config.batch_size, "seed": config.seed,
                       "dropout": config.dropout, "max_clips": config.clips_for(arch),
                       "init": init, "dataset_sha256": meta.get("dataset_sha256"),
                       **({"learning_rate": learning_rate} if fine_tuned else {})}
        timing_file = folder / "benchmark.json"
        timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
        resume = timing.get("fingerprint") == fingerprint
        folder.mkdir(parents=True, exist_ok=True)
        data = _subset(dataset, stream, config.clips_for(arch), config.seed, folder / "subset")
        keras.backend.clear_session()
        t0 = time.perf_counter()
        try:
            trained = train(data, arch, stream=stream, preset=config.preset,
                            epochs=config.epochs_for(arch), batch_size=config.batch_size,
                            seed=config.seed, out=folder, patience=config.resolved_patience,
                            resume=resume, progress=0, dropout=config.dropout,
                            init_from=init_from, learning_rate=learning_rate, width=width)
        except Exception as exc:  # name the step; a rerun resumes after the finished models
            exc.add_note(f"benchmark step: training {key} in {folder}")
            raise
        trained_now = trained.epochs_run > trained.resumed_from
        train_s = (timing.get("train_s", 0.0) if resume else 0.0) + (
            time.perf_counter() - t0 if trained_now else 0.0)
        timing_file.write_text(json.dumps({"fingerprint": fingerprint, "train_s": train_s},
                                          indent=2))
        if arch == "sononet":
            sononet_model = trained.model_path
        t0 = time.perf_counter()
        evaluation, probabilities, labels = _evaluate(trained.model_path, test, stream)
        eval_s = time.perf_counter() - t0
        params = json.loads(sidecar_path(trained.model_path).read_text())["params"]
        paper = PAPER_TABLE2.get(arch) if stream == _stream_of(arch) else None
        row = BenchmarkRow(
            key=key, name=PAPER_TABLE2[arch].name, arch=arch, streams=(stream,), width=width,
            params=int(params["trainable"]), params_total=int(params["total"]),
            **_metric_fields(evaluation), paper=paper, train_s=round(train_s, 1),
            eval_s=round(eval_s, 1), epochs_run=trained.epochs_run,
            best_epoch=trained.best_epoch, init=init, model_path=trained.model_path,
            note=_subset_note(dataset, data, stream))
        outputs[arch, stream] = _Outputs(row, probabilities, labels, _test_keys(test, stream))
        log.info("%s: P %.3f R %.3f F1 %.3f A1 %.3f A3 %.3f (n %d; train %.0f s)", key,
                 row.precision, row.recall, row.f1, row.top1, row.top3, row.n, train_s)
        keras.backend.clear_session()

    # Table 2
    table2: list[BenchmarkRow] = []
    for arch in ARCH_ORDER:
        if arch == "sononet":  # the paper lists the published SonoNet just before
            table2.append(_pretrained_row(sononet_npz, test, out, step))
        if (arch, _stream_of(arch)) in outputs:
            table2.append(outputs[arch, _stream_of(arch)].row)

    # Table 3
    table3, n_common = _table3(outputs, config, classes, fuse)

    # Confusion matrices (the paper's Fig. 3) and findings
    pngs: dict[str, Path] = {}
    for arch, stream, title in (("sononet", STREAM_2D, "2D SonoNet"),
                                ("sono_2dtcnn", TABLE2_CLIP_STREAM, "Sono-2DtCNN FR/4")):
        if (arch, stream) in outputs:
            row = outputs[arch, stream].row
            pngs[row.key] = save_confusion_png(
                row.confusion, out / f"confusion-{row.key}.png",
                title=f"{title}: {'held-out ' if test.held_out else ''}test ({row.n})")
    findings = compute_findings(table2, table3)
    if progress:
        progress("done", total, total)
    result = BenchmarkResult(
        dataset=dataset, out=out, config=config, table2=table2, table3=table3,
        findings=findings, confusion_pngs=pngs, n_common=n_common,
        wall_s=round(time.perf_counter() - t_start, 1), started=started,
        environment=_environment(), dataset_summary=_dataset_summary(meta),
        test_dataset=test.folder if test.held_out else None, test_data=test.summary(needed))
    (out / "results.json").write_text(json.dumps(result.to_dict(), indent=2, default=_json) + "\n")
    return result


@dataclass(frozen=True)
class SavedResults:
    """A benchmark's ``results.json`` read back (no model loaded).

    Attributes
    ----------
    path : Path
        The file.
    started : str
        ISO 8601 start time of the benchmark.
    rows : pandas.DataFrame
        One row per model or fusion of tables 2 and 3: ``table`` (2 or 3), ``key, name,
        precision, recall, f1, top1, top3, n`` (metrics as fractions in [0, 1]).
    confusions : dict of str to pandas.DataFrame
        Row key -> test confusion counts (rows true, columns predicted), where saved.
    """

    path: Path
    started: str
    rows: Any
    confusions: dict[str, Any]


def read_saved_results(folder: str | Path, *, max_depth: int = 3) -> list[SavedResults]:
    """Every benchmark ``results.json`` under a folder, newest first.

    Parameters
    ----------
    folder : str or Path
        Where to look; a missing folder gives an empty list.
    max_depth : int, optional
        Folder levels below `folder` searched.

    Returns
    -------
    list of SavedResults
        Files that are not benchmark results (no ``table2``) are skipped.
    """
    import pandas as pd

    folder = Path(folder)
    found = [p for depth in range(max_depth + 1)
             for p in folder.glob("/".join(["*"] * depth + ["results.json"]))] \
        if folder.is_dir() else []
    saved = []
    for path in found:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or "table2" not in record:
            continue
        rows, confusions = [], {}
        for table in (2, 3):
            for row in record.get(f"table{table}") or []:
                rows.append({"table": table, **{k: row.get(k) for k in (
                    "key", "name", "precision", "recall", "f1", "top1", "top3", "n")}})
                if row.get("confusion"):
                    classes = row["confusion"]["classes"]
                    confusions[row["key"]] = pd.DataFrame(row["confusion"]["matrix"],
                                                          index=classes, columns=classes)
        saved.append(SavedResults(path, str(record.get("started", "")), pd.DataFrame(rows),
                                  confusions))
    return sorted(saved, key=lambda r: r.started, reverse=True)


def _json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _pretrained_row(sononet_npz: str | Path | None, test: _TestData, out: Path,
                    step: Callable[[str], None]) -> BenchmarkRow:
    from inference.model_file import sidecar_path
    from inference.sononet import import_sononet

    paper = PAPER_TABLE2[PRETRAINED]
    if sononet_npz is None:
        return BenchmarkRow(key=f"{PRETRAINED}-{STREAM_2D}", name=paper.name, arch="sononet",
                            streams=(STREAM_2D,), paper=paper, init="published",
                            note="not computed: pass the published weights (--sononet-npz)")
    step("published SonoNet: testing")
    t0 = time.perf_counter()
    model_path = import_sononet(sononet_npz, out / "sononet-pt" / "model.keras")
    metrics, _keys, excluded = evaluate_pretrained(model_path, test.folder, split=test.splits)
    side = json.loads(sidecar_path(model_path).read_text())
    classes = [str(c) for c in metrics.confusion.index]
    return BenchmarkRow(
        key=f"{PRETRAINED}-{STREAM_2D}", name=paper.name, arch="sononet", streams=(STREAM_2D,),
        width=int(side["width"]), **_metric_fields(metrics), paper=paper,
        eval_s=round(time.perf_counter() - t0, 1), init="published", model_path=model_path,
        note=(f"published SonoNet-{side['width']} weights, 224 x 288 input, on the "
              f"{len(classes)} classes it names ({', '.join(classes)}); {excluded} test frames "
              "of other classes left out"))


def _table3(outputs: dict[tuple[str, str], _Outputs], config: BenchmarkConfig,
            classes: list[str], fuse: Callable) -> tuple[list[BenchmarkRow], int]:
    """Single streams and fusions, on the test instances every stream of the table shares."""
    if not config.streams:
        return [], 0
    available = {s: outputs[("sono_2dtcnn", s)] for s in config.streams
                 if ("sono_2dtcnn", s) in outputs}
    if ("sononet", STREAM_2D) in outputs:
        available = {STREAM_2D: outputs["sononet", STREAM_2D], **available}
    index: dict[str, dict[tuple[str, int], int]] = {}
    for stream, o in available.items():
        first: dict[tuple[str, int], int] = {}
        for i, k in enumerate(o.keys):
            first.setdefault(k, i)
        if len(first) < len(o.keys):
            log.warning("%s: %d test instances repeat an identity; the first of each is used",
                        stream, len(o.keys) - len(first))
        index[stream] = first

    def common_of(streams: Sequence[str]) -> list[tuple[str, int]]:
        keys = set(index[streams[0]])
        for s in streams[1:]:
            keys &= set(index[s])
        agree = [k for k in sorted(keys) if len({int(available[s].labels[index[s][k]])
                                                  for s in streams}) == 1]
        if len(agree) < len(keys):
            log.warning("%d shared test instances have different labels in different streams; "
                        "left out", len(keys) - len(agree))
        return agree

    streams = list(available)
    common = common_of(streams)
    if not common and STREAM_2D in streams:
        log.warning("the 2D stream shares no test instance with the clip streams; table 3 "
                    "leaves it out")
        streams.remove(STREAM_2D)
        common = common_of(streams)
    if not common:
        raise BenchmarkError("the streams share no test instance: rebuild the dataset with "
                             "aligned streams (`fetal-analytics dataset build`)")
    combos: list[tuple[str, ...]] = [(s,) for s in streams]
    combos += [c for c in config.fusion_combos() if set(c) <= set(streams)]
    rows = []
    for combo in combos:
        probs = [available[s].probabilities[[index[s][k] for k in common]] for s in combo]
        first = available[combo[0]]
        y = first.labels[[index[combo[0]][k] for k in common]]
        fused = probs[0] if len(combo) == 1 else fuse(probs)
        metrics = _metrics(y, fused, classes)
        paper = PAPER_TABLE3.get(combo)
        if len(combo) == 1:
            name = ("2D stream (SonoNet)" if combo[0] == STREAM_2D else
                    f"2D + t stream @ {_STREAM_NAMES[combo[0]]} (Sono-2DtCNN)")
            source = available[combo[0]].row
            extra = {"arch": source.arch, "width": source.width, "params": source.params,
                     "params_total": source.params_total, "model_path": source.model_path,
                     "init": source.init, "train_s": source.train_s,
                     "epochs_run": source.epochs_run, "best_epoch": source.best_epoch}
        else:
            name = "Late fusion " + " + ".join(_STREAM_NAMES[s] for s in combo)
            extra = {"arch": None, "init": "fusion"}
        rows.append(BenchmarkRow(key="+".join(combo), name=name, streams=combo,
                                 **_metric_fields(metrics), paper=paper, **extra))
    return rows, len(common)


# ---------------------------------------------------------------------------------------------
# Findings


def dynamic_confusion(confusion: Any) -> tuple[float, dict[str, float]]:
    """How much Ab and Ki are confused with HeD, both ways, as row-normalised shares.

    Parameters
    ----------
    confusion : pandas.DataFrame
        Counts, rows true, columns predicted, indexed by taxonomy code.

    Returns
    -------
    mean : float
        The mean of the defined shares (NaN when none is).
    shares : dict
        ``"Ab->HeD"``, ``"Ki->HeD"``, ``"HeD->Ab"``, ``"HeD->Ki"``: the share of the true
        class's test instances predicted as the other; NaN when the true class has none (or a
        class is not in the matrix).
    """
    shares = {}
    for dyn in DYNAMIC_CLASSES:
        for true, pred in ((dyn, DYNAMIC_CONFUSED_WITH), (DYNAMIC_CONFUSED_WITH, dyn)):
            value = math.nan
            if true in confusion.index and pred in confusion.columns:
                total = float(confusion.loc[true].sum())
                if total > 0:
                    value = float(confusion.loc[true, pred]) / total
            shares[f"{true}->{pred}"] = value
    defined = [v for v in shares.values() if not math.isnan(v)]
    return (float(np.mean(defined)) if defined else math.nan), shares


def compute_findings(table2: Sequence[BenchmarkRow],
                     table3: Sequence[BenchmarkRow]) -> list[Finding]:
    """The three claims of issue 5 item 6, from the tables' metrics.

    1. ``sono_2dtcnn_beats_2d``: Sono-2DtCNN (FR/4) has a higher macro F1 and top-1 than the 2D
       SonoNet (table 2).
    2. ``dynamic_classes``: Sono-2DtCNN's mean row-normalised confusion between {Ab, Ki} and HeD
       (both directions, `dynamic_confusion`; shares defined for both models) is lower than the
       2D SonoNet's.
    3. ``fusion_top3``: late fusion of FR/2 + FR/4 + FR/8 has a top-3 accuracy at least that of
       the best of the three single streams (table 3, the same instances).

    A finding whose rows are missing, or with no share defined, has ``holds`` None.
    """
    by2 = {r.key: r for r in table2}
    by3 = {r.key: r for r in table3}
    two_d, clip = by2.get("sononet-2d"), by2.get(f"sono_2dtcnn-{TABLE2_CLIP_STREAM}")
    findings = []
    claim = "Sono-2DtCNN beats the 2D SonoNet on macro F1 and top-1"
    if two_d is None or clip is None or two_d.f1 is None or clip.f1 is None:
        findings.append(Finding("sono_2dtcnn_beats_2d", claim, None,
                                "train both sononet and sono_2dtcnn"))
    else:
        holds = clip.f1 > two_d.f1 and clip.top1 > two_d.top1
        findings.append(Finding(
            "sono_2dtcnn_beats_2d", claim, holds,
            f"macro F1 {clip.f1:.3f} vs {two_d.f1:.3f}, top-1 {clip.top1:.3f} vs "
            f"{two_d.top1:.3f} (Sono-2DtCNN vs 2D SonoNet)",
            {"f1_2dt": clip.f1, "f1_2d": two_d.f1, "top1_2dt": clip.top1,
             "top1_2d": two_d.top1}))
    claim = ("the 2D+t model separates the dynamic classes (HeD vs Ab and Ki) better than the "
             "2D model")
    if two_d is None or clip is None or two_d.confusion is None or clip.confusion is None:
        findings.append(Finding("dynamic_classes", claim, None,
                                "train both sononet and sono_2dtcnn"))
    else:
        _, s2 = dynamic_confusion(two_d.confusion)
        _, s3 = dynamic_confusion(clip.confusion)
        both = [k for k in s2 if not math.isnan(s2[k]) and not math.isnan(s3[k])]
        if not both:
            findings.append(Finding(
                "dynamic_classes", claim, None,
                "the test data has no instance of Ab, Ki or HeD",
                {"shares_2d": s2, "shares_2dt": s3}))
        else:
            m2 = float(np.mean([s2[k] for k in both]))
            m3 = float(np.mean([s3[k] for k in both]))
            parts = ", ".join(f"{k} {s3[k]:.3f} vs {s2[k]:.3f}" for k in both)
            findings.append(Finding(
                "dynamic_classes", claim, m3 < m2,
                f"mean confusion share {m3:.3f} (Sono-2DtCNN) vs {m2:.3f} (2D SonoNet); "
                f"{parts}",
                {"mean_2dt": m3, "mean_2d": m2, "shares_2dt": s3, "shares_2d": s2,
                 "used": both}))
    claim = ("late fusion (FR/2 + FR/4 + FR/8) is at least as good as the best single stream "
             "on top-3")
    fused = by3.get("+".join(CLIP_STREAMS))
    singles = [by3[s] for s in CLIP_STREAMS if s in by3]
    if fused is None or len(singles) < len(CLIP_STREAMS):
        findings.append(Finding("fusion_top3", claim, None,
                                "table 3 needs the FR/2, FR/4 and FR/8 streams"))
    else:
        best = max(singles, key=lambda r: r.top3)
        findings.append(Finding(
            "fusion_top3", claim, fused.top3 >= best.top3 - 1e-12,
            f"top-3 {fused.top3:.4f} fused vs {best.top3:.4f} at {_STREAM_NAMES[best.key]} "
            f"(the best single stream): {_misses(fused)} vs {_misses(best)} of {fused.n} "
            "instances without the true class in the top 3",
            {"top3_fused": fused.top3, "top3_best_single": best.top3, "best_single": best.key,
             "top3_single": {r.key: r.top3 for r in singles}}))
    return findings


def _misses(row: BenchmarkRow) -> int:
    """How many test instances miss the true class in the top 3."""
    return round((1.0 - row.top3) * row.n)


# ---------------------------------------------------------------------------------------------
# Markdown


def _params(value: float | None) -> str:
    if value is None:
        return "NA"
    return f"{value / 1e6:.1f} M" if value >= 1e6 else f"{value / 1e3:.1f} k"


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), digits)


def table_records(rows: Sequence[BenchmarkRow], *, params: bool = True) -> list[dict[str, Any]]:
    """Rows as display records, the paper's values beside ours.

    Parameters
    ----------
    rows : sequence of BenchmarkRow
    params : bool
        Include the parameter columns (table 2).

    Returns
    -------
    list of dict
        Keys ``model``, ``stream``, [``params`` (trainable), ``params (total)``,
        ``params (paper)``: text such as "14.8 M" or "NA"],
        ``P``, ``P (paper)``, ``R``, ``R (paper)``, ``F1``, ``F1 (paper)``, ``A1``,
        ``A1 (paper)``, ``A3``, ``A3 (paper)`` (ours to 3 decimals, the paper's to 2), ``n``
        and ``train s``; None where a value does not exist.
    """
    records = []
    for r in rows:
        record: dict[str, Any] = {"model": r.name,
                                  "stream": " + ".join(_STREAM_NAMES[s] for s in r.streams)}
        if params:
            record["params"] = _params(r.params)
            record["params (total)"] = _params(r.params_total)
            record["params (paper)"] = _params(r.paper.params) if r.paper else None
        for label, attr in (("P", "precision"), ("R", "recall"), ("F1", "f1"), ("A1", "top1"),
                            ("A3", "top3")):
            record[label] = _rounded(getattr(r, attr), 3)
            record[f"{label} (paper)"] = getattr(r.paper, attr) if r.paper else None
        record["n"] = r.n or None
        record["train s"] = None if r.train_s is None else round(r.train_s)
        records.append(record)
    return records


def _table_lines(records: list[dict[str, Any]]) -> list[str]:
    """A benchmark table in markdown: our figures to 3 decimals, the paper's to its 2."""
    paper = {key: 2 for key in (records[0] if records else ()) if key.endswith("(paper)")}
    return markdown_table(records, column_digits=paper)


def _confusion_table(confusion: Any) -> list[str]:
    """A confusion matrix of counts as a markdown table: true classes down, predicted across."""
    return markdown_table([
        {"true / predicted": true, **{str(c): int(n) for c, n in counts.items()}}
        for true, counts in confusion.iterrows()])


def markdown(result: BenchmarkResult, *, relative_to: str | Path | None = None) -> str:
    """A ``BENCHMARKS.md`` section of a result: both tables, the findings and the confusion
    matrices, between `MARKER_START` and `MARKER_END`.

    Parameters
    ----------
    result : BenchmarkResult
    relative_to : path, optional
        Folder the markdown file lives in: links to the PNGs are made relative to it (absolute
        paths otherwise).

    Returns
    -------
    str
        Ends with a newline.
    """
    c, env, ds = result.config, result.environment, result.dataset_summary
    label, description = (_tested_on(result.test_data, code=True) if result.test_data else
                          ("the test split", f"the test split of `{result.dataset}`"))
    where = (f"{', '.join(env.get('gpus') or [])} GPU" if env.get("gpus")
             else f"{env.get('cpu_count')} CPU cores")

    def link(path: Path) -> str:
        if relative_to is None:
            return str(path)
        return os.path.relpath(Path(path).resolve(), Path(relative_to).resolve())

    train_s = sum({r.model_path: r.train_s for r in (*result.table2, *result.table3)
                   if r.train_s is not None}.values())
    width = next((r.width for r in (*result.table2, *result.table3)
                  if r.init not in ("published", "fusion")), c.width)
    record = c.to_dict()
    caps = sorted(set(record["max_clips"].values()), key=lambda v: v or 0)
    epochs = sorted(set(record["epochs"].values()))
    caps_text = ("every training clip" if caps == [None] else
                 "at most " + "/".join("all" if v is None else str(v) for v in caps)
                 + " training clips per model (a fixed random subset, stratified by class)")
    lines = [
        MARKER_START,
        "## Models: the paper's tables 2 and 3 (`fetal-analytics benchmark-models`)",
        "",
        f"Preset `{c.preset}` (width {width}, "
        f"{ds['size']} x {ds['size']} frames, 12 frames per clip), at most "
        f"{'/'.join(map(str, epochs))} epoch{'s' if epochs != [1] else ''} per model (patience "
        f"{c.resolved_patience}), batch {c.batch_size}, "
        f"seed {c.seed}, {caps_text}. Dataset `{result.dataset}`: "
        f"{ds['scans'].get('train', 0)}/{ds['scans'].get('val', 0)}/"
        f"{ds['scans'].get('test', 0)} scans in train/val/test (split by operator), "
        f"{len(ds['classes'])} classes{_others_text(ds)}; tested on {description}. "
        f"Keras {env.get('keras')} ({env.get('backend')}), "
        f"{where}, {env.get('platform')}; started {result.started}. Training took "
        f"{train_s / 60:.1f} min (all models), this run {result.wall_s / 60:.1f} min (a resumed "
        "run does not retrain finished models).",
        "",
        f"### Table 2: models on {label}",
        "",
        *_table_lines(table_records(result.table2)),
        "",
        "Params: trainable parameters (the feature-based models' frozen SonoNet trunk is not "
        "counted, as in the paper). The feature-based and Temp-Sono models start from the "
        "trained 2D SonoNet's weights, Sono-2DtCNN is inflated from them. "
        + " ".join(f"{r.name}: {r.note}." for r in result.table2 if r.note),
        "",
    ]
    if result.table3:
        lines += [
            f"### Table 3: streams and late fusion on {label} ({result.n_common} instances "
            "common to every stream)",
            "",
            *_table_lines(table_records(result.table3, params=False)),
            "",
            "Late fusion: the mean of the streams' softmax probabilities "
            "(`inference.evaluation.fuse`); the paper's multi-stream row is FR/2 + FR/4 + FR/8.",
            "",
        ]
    lines += ["### Findings (issue 5 item 6)", ""]
    for f in result.findings:
        verdict = {True: "holds", False: "does not hold", None: "not computed"}[f.holds]
        lines.append(f"- {f.claim[0].upper()}{f.claim[1:]}: **{verdict}** ({f.detail}).")
    if result.confusion_pngs:
        lines += ["", f"Confusion matrices on {label} (rows true, columns predicted; "
                  "the paper's Fig. 3):", ""]
        rows = {r.key: r for r in result.table2}
        for key, path in result.confusion_pngs.items():
            row = rows.get(key)
            if row is not None and row.confusion is not None:
                lines += [f"{row.name} ({_STREAM_NAMES[row.streams[0]]}), test counts:", "",
                          *_confusion_table(row.confusion), ""]
            lines += [f"![{key}]({link(path)})", ""]
    lines.append(MARKER_END)
    return "\n".join(lines) + "\n"


def _others_text(dataset_summary: Mapping[str, Any]) -> str:
    if "others_as" not in dataset_summary:  # a result of a version that did not record it
        return ""
    code = dataset_summary["others_as"]
    if code is None:
        return " (events of other classes left out, as in the paper)"
    return (f" (events of other classes labelled {code} by `--others-as`, unlike the paper, "
            "which leaves them out)")
