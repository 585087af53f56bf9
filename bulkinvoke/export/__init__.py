"""Tables from the ledger for pandas, DuckDB or Athena: ``read_ledger`` as a DataFrame
(``frame``), files in Parquet, CSV or JSON Lines written a chunk at a time (``table``,
``writers``), and the outputs downloaded from S3 with bounded memory (``outputs``). Imports
``scale``, ``ledger``, ``calls`` and the base modules.
"""
