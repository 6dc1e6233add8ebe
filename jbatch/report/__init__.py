"""Tables, claims, comparisons and plots of results, from their JSON alone (no jax, flax or
optax): one number and Markdown format (``table``), a sweep's report (``sweep``), its
ladder (``ladder``), the claims (``claims``), comparisons (``compare``), the data-scaling
study (``datascaling``), the throughput benchmark's report (``throughput``) and plots."""

from jbatch.report.sweep import update_readme, write_report

__all__ = ["update_readme", "write_report"]
