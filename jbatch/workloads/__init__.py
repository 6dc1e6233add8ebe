"""What is trained: jbatch's models (``model``, ``transformer``), offline data sets (``data``,
``mnist1d``, ``language``, ``shakespeare``) and all of them by name (``catalog``), text from a
character model (``sample``), and a user's model, data, loss and optimizer factory as one value
(``workload``)."""
