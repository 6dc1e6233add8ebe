"""The training library a user imports: one pure step for every regime (``step``), losses as
``(sum, count)`` (``loss``), scan-fused epochs and evaluation (``epoch``), Keras-exact
batching (``batching``), the divergence guard (``guard``), the one place that jits
(``engine``), optimizers with injected hyperparameters (``optim``), stacked replicas
(``replica``), data parallelism (``parallel``) and train/eval modes (``modes``)."""
