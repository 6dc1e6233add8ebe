"""The results contract: the one module that knows what jbatch's JSON documents hold.

Typed records for a sweep, a batch size, a replica, its curves, timing, where the time went,
advice, training runs, studies and bench's measurements (``records``), and ``load`` /
``dump`` (``document``): every reader and every writer goes through them, so jbatch report,
claims, compare, advise --against and a resuming sweep accept and refuse exactly the same
documents, and a refusal is one line naming the file and the field. Imports no jax, flax or
optax.
"""

from jbatch.results.document import (
    ADVICE,
    SWEEP,
    convert,
    decode,
    differences,
    dump,
    encode,
    load,
    read_advice,
    read_sweep,
)
from jbatch.results.records import (
    SCHEMA_VERSION,
    AdviceDocument,
    BatchSizeResult,
    BenchmarkDocument,
    Curve,
    Metadata,
    Replica,
    SweepDocument,
    TimeSpent,
    Timing,
)

__all__ = [
    "ADVICE",
    "SCHEMA_VERSION",
    "SWEEP",
    "AdviceDocument",
    "BatchSizeResult",
    "BenchmarkDocument",
    "Curve",
    "Metadata",
    "Replica",
    "SweepDocument",
    "TimeSpent",
    "Timing",
    "convert",
    "decode",
    "differences",
    "dump",
    "encode",
    "load",
    "read_advice",
    "read_sweep",
]
