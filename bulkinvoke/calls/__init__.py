"""Calling InvokeEndpointAsync: boto3 sessions and clients set up for a bulk run (``aws``), the
direct keep-alive transport (``transport``), the client-side rate limiter (``limiter``), the retry
policy as data (``retry``) and the one caller of the API (``invoker``). Imports the base modules and
``manifest`` (for the output file names); never the ledger, which is the engine's to write.
"""
