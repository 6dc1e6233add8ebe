"""The tool that runs experiments: a sweep's config and presets (``config``, ``presets``),
``jbatch.sweep`` (``api``), the resumable driver (``driver``), one batch size (``batch``),
its evaluation cadence (``cadence``), bookkeeping (``recorder``), noise probes (``noise``),
timing (``timing``), the pre-check (``precheck``), the sweep's optimizer (``optimizer``),
several processes (``distributed``), progress, metadata, ``jbatch train`` (``train``), the
data-scaling study's sweeps (``studies``) and ``jbatch scaling`` (``scaling``)."""
