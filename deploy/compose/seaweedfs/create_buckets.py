"""Create the S3 buckets the stack needs, as `make up` does natively. Safe to re-run.

usage: python create_buckets.py BUCKET...

The endpoint and credentials come from the AUTOLOADER_S3_* variables every service reads.
SeaweedFS answers its health check a little before its filer accepts buckets, hence the retries.
"""

from __future__ import annotations

import os
import sys
import time

import boto3


def ensure_buckets(buckets: list[str]) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["AUTOLOADER_S3_ENDPOINT_URL"],
        aws_access_key_id=os.environ["AUTOLOADER_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AUTOLOADER_S3_SECRET_ACCESS_KEY"],
        region_name=os.environ["AUTOLOADER_S3_REGION"],
    )
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    for bucket in buckets:
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
            print(f"created bucket {bucket}")


def main(buckets: list[str], attempts: int = 30) -> int:
    for attempt in range(1, attempts + 1):
        try:
            ensure_buckets(buckets)
        except Exception as error:
            if attempt == attempts:
                print(f"could not create buckets {buckets}: {error}", file=sys.stderr)
                return 1
            time.sleep(2)
        else:
            print(f"buckets ready: {', '.join(buckets)}")
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
