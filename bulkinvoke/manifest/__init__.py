"""The manifest stage: read every manifest format (CSV/TSV, text, JSON Lines, Parquet,
ManifestFile JSON, an S3 prefix) into one columnar ``Manifest``, check each row against the API's
limits (naming file, line and reason), and derive the deterministic inference IDs and output file
names (``ids``). The lowest layer with ``ledger``: it imports only the base modules
(``bulkinvoke.errors``, ``request_options``, ``s3uri``, ``states``).
"""
