"""The environment that points services and tests at the running native stack."""

from __future__ import annotations

from devstack.layout import (
    CREDENTIALS_KEY,
    DB_PASSWORD,
    DB_USER,
    S3_ACCESS_KEY,
    S3_REGION,
    S3_SECRET_KEY,
    Addresses,
    Layout,
)


def stack_env(a: Addresses) -> dict[str, str]:
    return {
        # The dev stack's published passwords and keys below are accepted only here.
        "AUTOLOADER_ENV": "development",
        "AUTOLOADER_DATABASE_URL": a.database_url,
        "AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS": a.kafka_bootstrap,
        "AUTOLOADER_S3_ENDPOINT_URL": a.s3_endpoint,
        "AUTOLOADER_S3_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AUTOLOADER_S3_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AUTOLOADER_S3_REGION": S3_REGION,
        "AUTOLOADER_SPARK_REMOTE": a.spark_remote,
        "AUTOLOADER_CATALOG_JDBC_URL": a.catalog_jdbc_url,
        "AUTOLOADER_CATALOG_USER": DB_USER,
        "AUTOLOADER_CATALOG_PASSWORD": DB_PASSWORD,
        "AUTOLOADER_CREDENTIALS_KEY": CREDENTIALS_KEY,
        "AUTOLOADER_COMMANDS_SIGNING_SECRET": "dev-commands-signing-secret-not-for-production",
        "PREFECT_API_URL": a.prefect_api_url,
        # The dev stack's tests and examples read local folders; production leaves them off.
        "AUTOLOADER_TENANCY_LOCAL_SOURCES_ENABLED": "true",
        "AUTOLOADER_TENANCY_LOCAL_SOURCE_ROOTS": "/tmp",
    }


def write_env_file(layout: Layout, addresses: Addresses) -> None:
    lines = [f"{key}={value}" for key, value in stack_env(addresses).items()]
    layout.env_file.write_text("\n".join(lines) + "\n")
