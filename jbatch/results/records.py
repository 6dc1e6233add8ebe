"""The records of jbatch's results documents: what each JSON file holds, field by field.

Every document is a ``msgspec.Struct`` tagged by its ``kind`` (``"jbatch.sweep"``,
``"jbatch.advise"``, ...) and carries a ``schema_version``; ``jbatch.results.load`` decodes
and validates it in one pass and ``jbatch.results.dump`` writes it. The records hold plain
values only (numbers, strings, lists): device state never enters a document. A field added
after a document was written has a default here, so older documents load; a value that
breaks what readers rely on (a batch size of 0, no replicas, a non-finite target) is
refused where it is decoded, with the path of the field.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec

from jbatch.config import HIGHER_IS_BETTER, SweepConfig, TrainConfig

SCHEMA_VERSION = 2  # 2: the config in groups (workload, training, grid, target, budget, measurement)

Positive = Annotated[int, msgspec.Meta(ge=1)]
Values = list[float | None]  # a curve's values; None where not measured or not finite


class Record(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every record: keyword-only fields, and no field this schema does not name (a renamed
    or misspelt key is damage, not something to drop silently on the next write)."""


class Commit(Record, kw_only=True):
    id: str | None = None
    dirty: bool | None = None


class Metadata(Record, kw_only=True):
    """Where and with what a number was measured (``sweeps.metadata.environment_metadata``);
    the hostname is left out on purpose."""

    versions: dict[str, str | None] = {}
    backend: str = "?"
    device_kind: str = "?"
    device_count: int = 1
    local_device_count: int = 1
    process_count: int = 1
    cpu: str = "?"
    cpu_count: int | None = None
    platform: str = ""
    xla_flags: str = ""
    date: str = ""
    commit: Commit = msgspec.field(default_factory=Commit)
    peer_versions: dict[str, str | None] | None = None  # pytest-benchmark runs of bench/


class Curve(Record, kw_only=True, omit_defaults=True):
    """One replica's evaluations at its points (``step``; ``epoch`` = step / steps per epoch):
    each metric of the split evaluated there, the mean mini-batch loss since the previous
    point, the training loss on the fixed sample."""

    step: list[int] = []
    epoch: list[float] = []
    test_loss: Values | None = None
    test_accuracy: Values | None = None
    train_loss: Values | None = None
    train_accuracy: Values | None = None
    minibatch_loss: Values | None = None
    sample_loss: Values | None = None

    def get(self, metric: str) -> Values | None:
        """The values of ``metric`` (``test_loss``, ...), None where this curve has none."""
        return getattr(self, metric, None) if metric in METRICS else None


METRICS = ("test_loss", "test_accuracy", "train_loss", "train_accuracy", "minibatch_loss", "sample_loss")


class NoiseCurve(Record, kw_only=True):
    """The gradient noise scale at a replica's checkpoints."""

    step: list[int]
    b_simple: Values
    grad_sq: Values
    trace_sigma: Values


class Replica(Record, kw_only=True):
    """One (swept values x seed) run of a batch size."""

    learning_rate: float
    hyperparameters: dict[str, float] = {}  # every injected value (a schedule's budget, beta2 by its rule)
    swept: list[str] = []  # the names the grid varied
    seed: int
    curve: Curve  # the target's split at every fine point
    coarse: Curve = msgspec.field(default_factory=Curve)  # the other split at the coarse points
    diverged: bool = False
    diverged_at_step: int | None = None
    pruned_at_step: int | None = None
    replayed_until: int | None = None
    extension: int = 0  # the round of the grid's extension it came from (0: the grid itself)
    noise: NoiseCurve | None = None


class Evaluations(Record, kw_only=True):
    fine: int = 0
    coarse: int = 0


class Counted(Record, kw_only=True):
    """What the compiled program counted per epoch: loss terms of real examples (tokens for
    a sequence loss) and, per epoch, the distinct update counts of the stable replicas."""

    examples_per_epoch: list[int]
    updates_per_epoch: list[list[int]]


class Splits(Record, kw_only=True):
    """Which split the fine and coarse points evaluate, and on how many examples."""

    fine: str = "test"
    coarse: str = "train"
    coarse_examples: int | None = None
    coarse_of: int | None = None
    sample_examples: int = 0


class NoiseEstimate(Record, kw_only=True):
    examples: int
    group: int
    of: int


class TimeSpent(Record, kw_only=True):
    """Where a batch size's wall time went (seconds, ``sweeps.clock.Clock``)."""

    train: float = 0.0
    evaluate: float = 0.0
    noise: float = 0.0
    compile: float = 0.0
    other: float = 0.0
    wall: float = 0.0
    c11_demo: float | None = None  # schema 1: claim C11's demonstration ran inside the sweep


class Timing(Record, kw_only=True):
    """Single-model seconds per step from interleaved rounds (``sweeps.timing``)."""

    seconds_per_step: Annotated[float, msgspec.Meta(gt=0)]
    seconds_per_step_interval: list[float]
    seconds_per_epoch: float
    rounds: int = 0
    timed_steps: int = 1
    epoch_seconds: list[float] = []
    first_call_seconds: float = 0.0


class Compilations(Record, kw_only=True):
    """Schema 1 only: claim C11's demonstration, once measured inside every sweep (now
    ``jbatch.results.records.ShapeDemo``, measured by ``bench/c11.py``)."""

    batch_shapes: list[int] = []
    plain_step_compilations: int = 0
    padded_epoch_compilations: int | None = None
    padded_epoch_round_compilations: int | None = None
    padded_epoch_calls: int | None = None


# The parts of a batch size's measurement that run after its training and may fail without losing it
STAGES = {"noise": "the gradient-noise probe", "replay": "the replay of a pruned best", "timing": "the timing rounds"}


def failed(batch_size: int | str, stage: str) -> str:
    """What failed, as every report of a recorded failure names it: ``B=16: the timing rounds failed``."""
    return f"B={batch_size}: {STAGES.get(stage, stage)} failed"


def failure_lines(doc: SweepDocument) -> list[str]:
    """One line per failure recorded after a batch size's training, smallest batch size first."""
    return [
        f"{failed(b, stage)}: {line}"
        for b, result in sorted(doc.batch_sizes.items(), key=lambda kv: int(kv[0]))
        for stage, line in result.failures.items()
    ]


class BatchSizeResult(Record, kw_only=True):
    """Everything measured at one batch size: its replicas' curves, what the program
    counted, the noise scale, where the time went and the single-model timing."""

    batch_size: Positive
    steps_per_epoch: Positive
    budget_steps: Positive
    chunk_steps: int = 1
    evaluations: Evaluations = msgspec.field(default_factory=Evaluations)
    replicas: Annotated[list[Replica], msgspec.Meta(min_length=1)]
    counted: Counted
    replica_batch: int | None = None
    tokens_per_example: Positive = 1
    memory: dict[str, int] | None = None  # XLA's plan of the training program (bytes)
    peak_rss: int | None = None  # the process's peak resident bytes after this batch size trained
    evaluation: Splits = msgspec.field(default_factory=Splits)
    noise_estimate: NoiseEstimate | None = None
    time: TimeSpent | None = None
    timing: Timing | None = None
    compilations: Compilations | None = None
    metadata: Metadata | None = None  # where this batch size was measured (a resumed sweep mixes runs)
    failures: dict[str, str] = {}  # what failed after the training (recorded, not lost): STAGES' keys


class Device(Record, kw_only=True):
    """What makes numbers comparable: the kind of device."""

    backend: str
    device_kind: str


class Checks(Record, kw_only=True):
    """What the pre-check found before any training (``sweeps.precheck``)."""

    learning_rate: str = "injected"  # how the learning rate enters the optimizer: "injected" or "scaled"
    batch_statistics: bool = False
    inexact: list[str] = []
    seconds: float | None = None


class Document(Record, kw_only=True):
    """A results document: its kind is its tag, and it says which schema it follows."""

    schema_version: int = SCHEMA_VERSION


class SweepDocument(Document, kw_only=True, tag_field="kind", tag="jbatch.sweep"):
    """``<results>/<name>/sweep.json``: a whole sweep."""

    name: str
    config: SweepConfig
    device: Device
    metadata: Metadata
    num_train: Positive
    data_sha256: str | None = None
    data: dict[str, Any] | None = None  # what the data is beyond its arrays (a language's entropy and floor)
    checks: Checks | None = None
    batch_sizes: dict[str, BatchSizeResult] = {}
    processes: dict[str, Metadata] | None = None  # a multi-process sweep: each process's metadata

    def __post_init__(self) -> None:
        target = self.config.target
        if target.metric not in HIGHER_IS_BETTER:
            raise ValueError(f"target_metric {target.metric!r} is not one of {', '.join(HIGHER_IS_BETTER)}")
        if not math.isfinite(target.value):
            raise ValueError(f"target_value {target.value!r} is not a finite number")
        for key, result in self.batch_sizes.items():
            if str(result.batch_size) != key:
                raise ValueError(f"batch size {key} records batch_size {result.batch_size}")

    def result(self, batch_size: int) -> BatchSizeResult:
        return self.batch_sizes[str(batch_size)]

    @property
    def results(self) -> list[BatchSizeResult]:
        """The finished batch sizes, smallest first."""
        return sorted(self.batch_sizes.values(), key=lambda r: r.batch_size)


class SweepPart(Document, kw_only=True, tag_field="kind", tag="jbatch.sweep-part"):
    """``<results>/<name>/parts/process-<i>.json``: what process ``index`` of a multi-process
    sweep trained, until process 0 merges it into the sweep document."""

    index: int
    metadata: Metadata
    batch_sizes: dict[str, BatchSizeResult] = {}


# ``jbatch advise``


class StepTiming(Record, kw_only=True):
    seconds_per_step: Annotated[float, msgspec.Meta(gt=0)]
    seconds_per_step_interval: list[float]
    seconds_per_epoch: float
    rounds: int
    timed_steps: int


class BranchPlan(Record, kw_only=True):
    batch_size: int
    learning_rate: float
    checkpoints: list[int]
    examples: int
    multipliers: list[int]
    tolerance: float
    rule: str
    seeds: list[int]
    noise_examples: int = 1024
    lr_factors: list[float] = msgspec.field(default_factory=lambda: [1.0])
    ceiling: int = 0
    max_examples: int = 0


class BranchRound(Record, kw_only=True):
    """An extension round of a checkpoint whose B* was censored: branches at larger batch
    sizes, all for ``examples`` examples, from the same trunk states."""

    examples: int
    batch_sizes: list[int]
    branches: dict[str, dict[str, float | None]]
    factors: dict[str, dict[str, float | None]] = {}
    b_star: dict[str, int]
    censored: dict[str, bool]
    b_star_median: float
    censored_median: bool


class BranchCheckpoint(Record, kw_only=True):
    """One checkpoint of the trunk: its held-out loss per seed, each branch's loss per batch
    size and seed (and the learning-rate factor it kept), B* per seed and of the median."""

    step: int
    examples: int
    loss: dict[str, float | None]
    branches: dict[str, dict[str, float | None]]
    factors: dict[str, dict[str, float | None]] = {}
    b_star: dict[str, int]
    censored: dict[str, bool]
    b_simple: dict[str, float | None]
    b_star_median: float
    censored_median: bool
    b_simple_median: float
    tolerance: float | None = None  # older documents: the plan's
    extensions: list[BranchRound] = []


class Branching(Record, kw_only=True):
    plan: BranchPlan
    batch_sizes: list[int]
    checkpoints: list[BranchCheckpoint]


class Phase(Record, kw_only=True):
    batch_size: int
    steps: int
    learning_rate: float | None = None


class AdviceCost(Record, kw_only=True):
    learning_rate: float = 0.0
    timing: float
    branching: float
    total: float
    memory: float = 0.0  # the largest batch that fits, probed (``sweeps.fits``)


class Fits(Record, kw_only=True):
    """The largest batch size that fits in memory (``sweeps.fits``): how it was found, the sizes
    tried, XLA's planned bytes where those decided, and the pick (the largest candidate at most
    ``margin`` of it; None: none)."""

    largest: int | None
    pick: int | None
    method: str
    margin: float
    capacity: float | None = None  # bytes, the stated cap on a CPU
    tried: list[int] = []
    planned_bytes: dict[str, int] = {}
    seconds: float = 0.0


class SweepEstimate(Record, kw_only=True):
    seconds: float
    fraction: float | None
    basis: str


class Against(Record, kw_only=True):
    """What the sweep the advice was checked against measured."""

    directory: str
    seconds: float
    fastest: int | None
    fastest_set: list[int]
    seconds_to_target: dict[str, float]
    recommended_over_fastest: float | None
    recommended_over_fastest_interval: list[float | None] | None = None  # None: unbounded (one seed)
    b_crit: float | None = None
    b_crit_interval: list[float | None] | None = None
    cost_fraction: float | None = None
    seconds_to_target_interval: dict[str, list[float | None]] = {}  # per batch size, over the sweep's seeds
    steps_to_target: dict[str, float] = {}  # mean over the seeds that reached it
    reached: dict[str, list[int]] = {}  # seeds that reached the target, of the seeds run
    samples_per_second: dict[str, float] = {}  # training throughput per batch size (the timing rounds)
    machine: str = ""  # the sweep's CPU or device kind, and core count: its cost is this machine's


class Spread(Record, kw_only=True):
    """Values over seeds: their mean (geometric for steps and seconds) and 95% interval."""

    values: list[float]
    n: int
    of: int
    mean: float | None
    interval: list[float | None]


class Comparison(Record, kw_only=True):
    warmup: Spread
    fixed: Spread
    ratio: float | None = None
    ratio_interval: list[float | None] | None = None  # None: unbounded (one seed)


class SeedRun(Record, kw_only=True):
    seed: int
    steps_to_target: int | None
    examples_to_target: int | None
    seconds_to_target: float | None
    final: float | None
    curve: list[list[float | None]] = []


class WarmupCheck(Record, kw_only=True):
    """The advised warm-up trained to a sweep's target beside its fastest batch size (``sweeps.warmup_check``)."""

    phases: list[Phase]
    other_hyperparameters: dict[str, float] = {}
    metric: str
    target: float
    every_examples: int
    budget_examples: int
    seeds: list[SeedRun]
    reference: dict[str, Any]
    steps_to_target: Comparison
    seconds_to_target: Comparison
    examples_to_target: Comparison
    final: Comparison
    higher_is_better: bool
    seconds: float


class ScheduleCandidate(Record, kw_only=True):
    """A schedule of batch sizes the advice weighed against its fixed pick besides the warm-up
    (``sweeps.seesaw``): its phases (the last open), whether it is advised and why, its
    predicted seconds over the fixed pick's per seed, and its check against a sweep."""

    name: str
    phases: list[Phase]
    advised: bool = False
    reason: str = ""
    predicted: list[float] = []
    check: WarmupCheck | None = None


class AdviceDocument(Document, kw_only=True, tag_field="kind", tag="jbatch.advise"):
    """``<results>/advise-<name>/advise.json``: ``jbatch advise``."""

    config: SweepConfig
    candidates: list[int]
    trunk_batch: int
    learning_rate: float
    timing: dict[str, StepTiming]
    branching: Branching
    b_crit: float
    b_crit_censored: bool
    b_simple_along_training: float
    recommended: int
    relative_steps: dict[str, float]
    relative_seconds: dict[str, float]
    recommended_set: list[int] = []  # candidates whose predicted seconds could not be told apart
    retimed: int = 0  # batches of timing rounds the recommended set was re-timed
    trunk_learned: bool = True  # False: the trunk's held-out loss never moved beyond its tolerance
    warmup: list[Phase]
    warmup_advised: bool = True
    warmup_reason: str = ""
    warmup_predicted: list[float] = []  # per seed: the warm-up's predicted seconds over the fixed pick's
    trunk_learning_rates: dict[str, float | None] = {}
    cost: AdviceCost
    metadata: Metadata
    sweep_estimate: SweepEstimate | None = None
    against: Against | None = None
    warmup_check: WarmupCheck | None = None
    seesaw: ScheduleCandidate | None = None  # None: an advice from before Seesaw was weighed
    fits: Fits | None = None  # None: an advice from before the memory probe


# ``jbatch train``, the data-scaling study, bench's measurements


class EpochRecord(Record, kw_only=True):
    epoch: int
    iterations: int
    train_loss: float | None
    test_loss: float | None
    train_accuracy: float | None = None
    test_accuracy: float | None = None
    seconds: float
    step_losses: list[float | None] = []


class TrainDocument(Document, kw_only=True, tag_field="kind", tag="jbatch.train"):
    """``jbatch train --out FILE``: one run, epoch by epoch."""

    config: TrainConfig
    batch_size: int
    steps_per_epoch: int
    num_train: int
    compile_seconds: dict[str, float]
    epochs: list[EpochRecord]
    metadata: Metadata
    sample: dict[str, Any] | None = None  # text written by a character model
    inexact: list[str] = []  # what is not exact in this training (precheck.inexact)


class DataScalingRow(Record, kw_only=True):
    model: str
    n: int
    target: float
    b_crit: float | None
    low: float | None
    high: float | None
    bound: str | None
    b_simple: float | None
    b_simple_all: list[float] = []
    wall_seconds: float
    metadata: Metadata


class PowerLaw(Record, kw_only=True):
    exponent: float
    prefactor: float
    low: float
    high: float


class DataScalingDocument(Document, kw_only=True, tag_field="kind", tag="jbatch.workloads.data-scaling"):
    """``results/data-scaling/scaling.json``: B_crit against the training-set size."""

    rows: list[DataScalingRow]
    fits: dict[str, dict[str, PowerLaw]]


class ScalingRow(Record, kw_only=True):
    mode: str
    devices: int
    global_batch: int
    per_device_batch: float
    workload: str
    samples_per_second: float
    seconds: list[float]
    compile_seconds: float
    metadata: Metadata


class ScalingDocument(Document, kw_only=True, tag_field="kind", tag="jbatch.scaling"):
    """``results/scaling/scaling.json``: throughput against device count (``bench/scaling.py``)."""

    rows: list[ScalingRow]


class ReplicaCoresDocument(Document, kw_only=True, tag_field="kind", tag="jbatch.replica_cores"):
    """``results/throughput/replicas.json``: K replicas at B = 1 (``bench/replica_cores.py``)."""

    batch_size: int
    steps_per_round: int
    bytes_rewritten_per_step: int
    rows: list[dict[str, Any]]
    rewrite_gb_per_s: dict[str, float]
    rewrite_bytes: int
    rewrite_seconds: dict[str, list[float]]
    metadata: Metadata


class ShapeDemo(Record, kw_only=True):
    """Claim C11 at one batch size: the batch shapes of an epoch, and how often a plain
    ``jax.jit`` step fed them unpadded and jbatch's padded epoch compiled."""

    batch_size: int
    batch_shapes: list[int]
    plain_step_compilations: int
    padded_epoch_compilations: int
    padded_epoch_calls: int


class ShapeDemoDocument(Document, kw_only=True, tag_field="kind", tag="jbatch.c11"):
    """``results/c11/c11.json``: claim C11's demonstration (``bench/c11.py``)."""

    dataset: str
    num_train: int
    rows: list[ShapeDemo]
    metadata: Metadata


class Benchmark(msgspec.Struct, kw_only=True):
    """One case of a pytest-benchmark run: its rounds' statistics and what jbatch's
    benchmarks put in ``extra_info`` (their own keys, read by ``report.throughput``)."""

    name: str
    stats: dict[str, Any]
    extra_info: dict[str, Any] = {}
    group: str | None = None
    params: dict[str, Any] | None = None


class MachineInfo(msgspec.Struct, kw_only=True):
    jbatch: Metadata = msgspec.field(default_factory=Metadata)


class BenchmarkDocument(msgspec.Struct, kw_only=True):
    """pytest-benchmark's own JSON (``--benchmark-json``) of ``bench/``: its format, not
    jbatch's, so it has no kind; jbatch's metadata is in ``machine_info.jbatch``."""

    machine_info: MachineInfo
    benchmarks: list[Benchmark]
    commit_info: dict[str, Any] = {}
    datetime: str | None = None
    version: str | None = None


DOCUMENTS = (
    SweepDocument,
    SweepPart,
    AdviceDocument,
    TrainDocument,
    DataScalingDocument,
    ScalingDocument,
    ReplicaCoresDocument,
    ShapeDemoDocument,
)
KINDS = {cls.__struct_config__.tag: cls for cls in DOCUMENTS}
