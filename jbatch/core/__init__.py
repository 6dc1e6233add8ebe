"""The training library a user imports: one pure step for every regime (``step``), losses as
optax writes them and the masked ``(sum, count)`` jbatch divides once (``loss``), the one scan
of training steps and the evaluation (``epoch``), Keras-exact batching (``batching``), the
divergence guard (``guard``), the one module that compiles (``engine``), optimizers with
injected hyperparameters (``optim``), stacked replicas (``replica``), data parallelism
(``parallel``), train/eval modes (``modes``) and batch-size schedules (``phases``)."""
