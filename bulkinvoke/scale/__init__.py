"""Running one dataset on many machines: deterministic shards of a manifest (``shards``), the
run's ledger mirrored to S3 (``mirror``, ``mirror_files``, ``mirror_settings``) under a lease that
admits one live writer (``lease``), and the union of the shards' ledgers (``union``). Imports
``ledger``, ``manifest`` (a shard is a hash of the inference ID), ``calls`` (for AWS
settings) and the base modules.
"""
