"""Commands upstream systems publish on `autoloader.commands`, as versioned pydantic models.

A command names its tenant and one of that tenant's ingestions (by id or by name); it can
reach no other tenant's ingestions. The message value is the command's JSON; its Kafka headers
sign those exact bytes with the named tenant's key (shared.command_signing), so only a holder
of that key can speak for the tenant. Who may publish on the topic at all is decided by
Kafka's ACLs. Each command carries an idempotency key, so a redelivered or repeated command
gives one run, and who asked, which the run records. See docs/commands.md.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from shared.spec import BackfillSpec


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    schema_version: Literal[1] = 1
    tenant: str = Field(
        min_length=1,
        max_length=100,
        description="the tenant's name; the message must be signed with this tenant's key",
    )
    ingestion_id: uuid.UUID | None = None
    ingestion_name: str | None = Field(default=None, min_length=1, max_length=200)
    idempotency_key: str = Field(
        min_length=1, max_length=200, description="the same key twice gives one run"
    )
    requested_by: str = Field(min_length=1, max_length=200, description="who asked")

    @model_validator(mode="after")
    def _one_ingestion(self) -> Command:
        if (self.ingestion_id is None) == (self.ingestion_name is None):
            raise ValueError("give exactly one of ingestion_id and ingestion_name")
        return self

    @property
    def ingestion_ref(self) -> str:
        return str(self.ingestion_id) if self.ingestion_id else repr(self.ingestion_name)


class TriggerIngestion(Command):
    """Run the ingestion now, as a run with trigger `upstream`. The message's headers
    `autoloader-timestamp` and `autoloader-signature` sign it with the tenant's key
    (docs/commands.md); an unsigned or badly signed command is dead-lettered."""

    command_type: Literal["TriggerIngestion"] = "TriggerIngestion"


class RequestBackfill(Command):
    """Replay the ingestion's files of a time window, as a run with trigger `backfill`.
    Signed like TriggerIngestion (docs/commands.md)."""

    command_type: Literal["RequestBackfill"] = "RequestBackfill"
    backfill: BackfillSpec


UpstreamCommand = Annotated[TriggerIngestion | RequestBackfill, Field(discriminator="command_type")]

COMMAND_ADAPTER: TypeAdapter[UpstreamCommand] = TypeAdapter(UpstreamCommand)


def parse_command(raw: bytes | str | dict[str, Any]) -> UpstreamCommand:
    """Validate one message of `autoloader.commands`; raises ValidationError."""
    if isinstance(raw, dict):
        return COMMAND_ADAPTER.validate_python(raw)
    return COMMAND_ADAPTER.validate_json(raw)
