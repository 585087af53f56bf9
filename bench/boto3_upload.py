"""The baseline for staging: what a user would write to put a JSON Lines file's records in S3
one object each, named by content: one boto3 client shared by a ``ThreadPoolExecutor``, one
``put_object`` per distinct record, no listing, no ledger.

    python bench/boto3_upload.py RECORDS.jsonl s3://bucket/prefix/ [--concurrency 16]
"""

from __future__ import annotations

import argparse
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path)
    parser.add_argument("stage")
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    bucket, _, prefix = arguments.stage.removeprefix("s3://").partition("/")
    payloads = {
        hashlib.sha256(line.encode()).hexdigest() + ".json": line.encode()
        for line in arguments.records.read_text().splitlines()
        if line.strip()
    }
    s3 = boto3.client("s3")

    def put(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=bucket, Key=prefix + item[0], Body=item[1])

    with ThreadPoolExecutor(arguments.concurrency) as pool:
        list(pool.map(put, payloads.items()))


if __name__ == "__main__":
    main()
