"""The ledger, the run's truth: run.json, the plan and the Parquet event log under RUN_DIR, with
durable batches (``files``), the schema and fold of events (``schema``), the writer that flushes and
compacts on threads of its own (``background``), the tables read back from it (``views``), the run
lock, and what makes two run directories the same run (``identity``). The lowest layer with
``manifest``: it imports only the base modules.
"""
