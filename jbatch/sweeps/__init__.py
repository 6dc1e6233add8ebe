"""The tool that runs experiments, on the training library: ``jbatch.sweep`` and
``jbatch.advise`` and the one place a sweep or an advice is checked, run and published
(``api``); what every batch size of a run shares (``session``); the resumable sweep
(``driver``), one batch size (``batch``), its grid of replicas (``grid``), its evaluation
cadence (``cadence``), its bookkeeping (``recorder``), where its time goes (``clock``), noise
probes (``noise``), timing (``timing``), the pre-check (``precheck``), the checks of a config
against its data (``checks``), the sweep's optimizer (``optimizer``), the results directory
and its lock (``resultsdir``), several processes (``distributed``), progress lines
(``progress``), metadata (``metadata``), the named sweeps (``presets``), ``jbatch train``
(``train``), the data-scaling study's sweeps (``studies``), and advice: the local critical
batch size by branching (``branching``), ``jbatch advise`` (``advise``), its recommendation as a
measurement (``pick``), Seesaw as its second schedule candidate (``seesaw``), the largest batch that fits in
memory (``fits``) and a warm-up trained to a sweep's target (``warmup_check``)."""
