"""Every parameter of the scan simulator's workflow model, with where its number comes from.

Sources, as cited beside each number:

[paper]
    Sharma et al., ISBI 2019: share of labelled time per class (HeD 20 %, 3Dm 17.3 %, Bk 14.8 %,
    Br 9.2 %, MaD 9.2 %, Sp 6 %, Ab 3.6 %, NL 3.6 %, Ki 2.6 %, Fa 2.6 %, Fm 1.8 %, the rarer 9
    together < 10 %); mean scan 45.7 +- 11.6 min; freeze-centred 5 s labelling clips, 2/3 before
    the freeze and 1/3 after; 30 fps recordings.
[FASP]
    UK Fetal Anomaly Screening Programme: 30 min allotted to the 18+0-20+6 week scan; the
    required structures (see ``taxonomy.csv``); biometry HC (brain), AC (abdomen), FL (femur).
[brief]
    The project's brief for the simulator: trainees take longer (about 25 % more on biometry
    structures), search longer, revisit more often, miss required structures more often, and
    are less consistent; the first structure is most often brain, spine or heart; freezes last
    about 1-10 s, sometimes with measurement calipers.
[assumed]
    Chosen so that the above hold and the cohort looks plausible; change them freely.

The model is deliberately simple: an operator has a habitual order of structures; each scan
perturbs it, drops some structures, inserts revisits, draws each visit's duration from a log-normal
distribution and separates visits by background search (Bk).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ClassProfile", "GroupProfile", "WorkflowConfig", "default_config"]


@dataclass(frozen=True)
class ClassProfile:
    """How one anatomy or activity class is scanned (expert values; groups scale them).

    Attributes
    ----------
    visit_mean_s : float
        Mean duration of one visit, in seconds [assumed, calibrated to the paper's shares].
    presence : float
        Probability that a scan visits the class at all (required structures: 1, less the
        group's miss rate) [assumed].
    freezes_per_min : float
        Expected freezes per minute of a visit (Poisson) [assumed: about one a minute, more for
        biometry structures, which are frozen for measurement, fewer in 3D mode].
    caliper_probability : float
        Probability that a freeze shows measurement calipers [assumed; high for biometry].
    """

    visit_mean_s: float
    presence: float = 1.0
    freezes_per_min: float = 1.0
    caliper_probability: float = 0.1


@dataclass(frozen=True)
class GroupProfile:
    """How an operator group differs from the expert baseline.

    Attributes
    ----------
    biometry_time_factor : float
        Multiplier of visit durations of biometry structures (Br, Ab, Fm) [brief: ~1.25].
    other_time_factor : float
        Multiplier of other visit durations [assumed].
    search_time_factor : float
        Multiplier of background-search (Bk) durations [brief: trainees search longer].
    revisit_probability : float
        Probability of returning to a visited structure once more, applied again after each
        return (so the number of revisits is geometric) [brief].
    miss_probability : float
        Probability that a required structure is not scanned [brief].
    order_swaps_per_scan : float
        Mean number of adjacent swaps applied to the habitual order in each scan (Poisson): the
        scan-to-scan inconsistency [brief: experts are more consistent].
    habit_swaps : int
        Adjacent swaps that make an operator's habitual order differ from the group's [assumed].
    operator_speed_sd : float
        SD of an operator's log speed factor: variation between operators of a group [assumed].
    visit_cv : float
        Coefficient of variation of visit durations within an operator [assumed].
    """

    biometry_time_factor: float = 1.0
    other_time_factor: float = 1.0
    search_time_factor: float = 1.0
    revisit_probability: float = 0.25
    miss_probability: float = 0.01
    order_swaps_per_scan: float = 0.5
    habit_swaps: int = 1
    operator_speed_sd: float = 0.08
    visit_cv: float = 0.45


def _default_classes() -> dict[str, ClassProfile]:
    # Visit means calibrated so that an expert scan lasts ~30 min with the paper's class shares.
    return {
        "HeD": ClassProfile(260, caliper_probability=0.15),
        "3Dm": ClassProfile(330, presence=0.85, freezes_per_min=0.7, caliper_probability=0.0),
        "Br": ClassProfile(150, freezes_per_min=1.2, caliper_probability=0.7),
        "MaD": ClassProfile(140, presence=0.9, freezes_per_min=0.8, caliper_probability=0.2),
        "Sp": ClassProfile(95),
        "Ab": ClassProfile(70, freezes_per_min=1.3, caliper_probability=0.7),
        "NL": ClassProfile(60),
        "Ki": ClassProfile(50, caliper_probability=0.2),
        "Fa": ClassProfile(55, presence=0.75),
        "Fm": ClassProfile(40, freezes_per_min=1.5, caliper_probability=0.8),
        "Um": ClassProfile(30, presence=0.6),
        "Fb": ClassProfile(35, presence=0.3),
        "BlD": ClassProfile(25, presence=0.6),
        "Fe": ClassProfile(25, presence=0.6),
        "Th": ClassProfile(30, presence=0.3),
        "sex": ClassProfile(20, presence=0.3),
        "Ha": ClassProfile(25, presence=0.6),
        "Ar": ClassProfile(25, presence=0.5),
        "Le": ClassProfile(25, presence=0.5),
    }


@dataclass(frozen=True)
class WorkflowConfig:
    """The scan simulator's workflow model.

    Attributes
    ----------
    classes : dict of str to ClassProfile
        The classes scanned and how (Bk is not listed: it fills the gaps between visits).
    habitual_order : tuple of str
        The order a group scans in, before operators' habits and scans' variations [assumed,
        after the usual head-to-toe sequence: head and face, spine, abdomen, limbs, heart,
        then maternal structures and 3D; FASP prescribes no order].
    first_structure : dict of str to float
        Probabilities of the structure a scan starts with [brief: brain, spine or heart]; the
        rest of the probability keeps the habitual first structure.
    biometry : tuple of str
        Biometry structures [FASP: HC, AC, FL].
    search_mean_s, search_cv : float
        Background search between two visits: log-normal mean (s) and coefficient of variation
        [assumed; gives Bk ~15 % of expert time, as the paper's 14.8 %].
    opening_search_s : float
        Mean background search before the first structure [assumed].
    search_freezes_per_min : float
        Freezes per minute of background search (a glance at a passing view) [assumed; the
        paper's manual labels include Bk clips].
    revisit_time_factor : float
        A revisit lasts this fraction of a first visit [assumed].
    clip_s : float
        Length of a manual-labelling clip [paper: 5 s].
    clip_before_fraction : float
        Share of the clip before the freeze [paper: 2/3].
    freeze_min_s, freeze_max_s : float
        Range of freeze durations, uniform [brief: about 1-10 s].
    groups : dict of str to GroupProfile
        ``expert`` and ``trainee`` by default.
    """

    classes: dict[str, ClassProfile] = field(default_factory=_default_classes)
    habitual_order: tuple[str, ...] = (
        "Br", "Th", "NL", "Fa", "Sp", "Ab", "Um", "Ki", "BlD", "Fm", "Le", "Fe", "Ar", "Ha",
        "HeD", "sex", "Fb", "MaD", "3Dm")
    first_structure: dict[str, float] = field(
        default_factory=lambda: {"Br": 0.45, "Sp": 0.2, "HeD": 0.25})
    biometry: tuple[str, ...] = ("Br", "Ab", "Fm")
    search_mean_s: float = 10.0
    search_cv: float = 0.8
    opening_search_s: float = 25.0
    search_freezes_per_min: float = 0.5
    revisit_time_factor: float = 0.5
    clip_s: float = 5.0
    clip_before_fraction: float = 2 / 3
    freeze_min_s: float = 1.0
    freeze_max_s: float = 10.0
    groups: dict[str, GroupProfile] = field(default_factory=lambda: {
        "expert": GroupProfile(),
        "trainee": GroupProfile(
            biometry_time_factor=1.25, other_time_factor=1.1, search_time_factor=1.6,
            revisit_probability=0.4, miss_probability=0.06, order_swaps_per_scan=2.0,
            habit_swaps=3, operator_speed_sd=0.15, visit_cv=0.6),
    })

    def __post_init__(self) -> None:
        from fetal_analytics import taxonomy

        unknown = [c for c in [*self.classes, *self.habitual_order, *self.first_structure]
                   if c not in taxonomy.codes() or c == "Bk"]
        if unknown:
            raise ValueError(f"workflow config: not a simulated taxonomy code: {unknown}")
        if set(self.habitual_order) != set(self.classes):
            raise ValueError("workflow config: habitual_order must list every class once")
        if sum(self.first_structure.values()) > 1:
            raise ValueError("workflow config: first_structure probabilities sum above 1")


def default_config() -> WorkflowConfig:
    """The documented default workflow model."""
    return WorkflowConfig()
