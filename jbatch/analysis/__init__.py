"""What results mean, from their JSON alone (no jax, flax or optax): the selection of each
batch size's best setting (``selection``), table rows (``summary``), intervals
(``stats``), the S(B) fit (``tradeoff``), B_crit against the target (``ladder``) and
against the data (``datascaling``), the batch size each finder people use would pick
(``finders``), and memory per batch size (``memory``)."""
