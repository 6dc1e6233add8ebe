"""``jbatch site``: a static results site built from the results documents alone (no jax):
the pages as Markdown with their figures (``pages``, ``figures``), and the site built by
MkDocs with the Material theme, Plotly's JavaScript copied beside it so that it works offline,
opened from disk or served (``build``)."""
