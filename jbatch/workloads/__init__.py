"""What is trained: jbatch's models (``model``, ``transformer``), offline data sets
(``data``, ``mnist1d``, ``language``), a user's model, data, loss and optimizer factory as
one value (``workload``), and the MLP throughput workloads (``throughput``)."""
