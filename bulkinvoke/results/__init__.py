"""Finding what the endpoint made of each accepted call: outputs and failures in S3, by LIST or
HEAD sweeps picked by cost, and their schedule (``collector``); results pushed through SNS and SQS
(``notifications``). Imports the base modules only: it reports findings, and the engine records
them.
"""
