"""The documented types of mirage: what every stage reads and writes.

- :mod:`~mirage.schema.records`: the sample-record schema and its validation;
- :mod:`~mirage.schema.tables`: one spec per output table (column, dtype, one-line meaning);
- :mod:`~mirage.schema.vocab`: the vocabularies of categorical columns, as enums;
- :mod:`~mirage.schema.settings`: the settings of each command, validated when made;
- :mod:`~mirage.schema.results`: the result containers each command's ``run_*`` returns.

Nothing here imports another part of mirage but :mod:`mirage.errors`.
"""
