"""boto3 clients for the emulator's own S3, SNS and CloudWatch calls, one set per thread.

Each thread gets its own session and clients on first use (sessions are not thread-safe, and a
worker that keeps its client keeps its HTTP connections). The servers are on loopback: fixed
fake credentials (which moto accepts; a user's real ones have no business here, and looking for
them can reach out to instance metadata), and no proxy, whatever HTTP(S)_PROXY says.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from bulkinvoke.aws_protocols import CloudWatchClient, S3Client, SnsClient

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    max_pool_connections=4,
    s3={"addressing_style": "path"},
    # Checksums guard against corruption on the internet; here they only cost worker CPU.
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
    proxies={},
)
_FAKE_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


class Clients:
    def __init__(
        self, s3_url: str, moto_url: str | None, region: str, verify: str | bool | None = None
    ) -> None:
        self.s3_url = s3_url
        # moto's URL: SNS, SQS and CloudWatch (None: no topics, no metrics).
        self.moto_url = moto_url
        self.region = region
        # The CA bundle of an HTTPS moto (None: botocore's default).
        self.verify = verify
        self._local = threading.local()

    def _session(self) -> boto3.session.Session:
        session: boto3.session.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = boto3.session.Session(region_name=self.region, **_FAKE_CREDENTIALS)
            self._local.session = session
            self._local.clients = {}
        return session

    def _client(self, service: str, url: str, region: str) -> Any:
        session = self._session()
        clients: dict[tuple[str, str], Any] = self._local.clients
        client = clients.get((service, region))
        if client is None:
            client = session.client(
                service, endpoint_url=url, region_name=region, config=_CONFIG, verify=self.verify
            )
            clients[(service, region)] = client
        return client

    def s3(self) -> S3Client:
        client: S3Client = self._client("s3", self.s3_url, self.region)
        return client

    def sns(self, region: str) -> SnsClient:
        if self.moto_url is None:
            raise RuntimeError("no SNS server is configured")
        client: SnsClient = self._client("sns", self.moto_url, region)
        return client

    def cloudwatch(self) -> CloudWatchClient:
        if self.moto_url is None:
            raise RuntimeError("no CloudWatch server is configured")
        client: CloudWatchClient = self._client("cloudwatch", self.moto_url, self.region)
        return client
