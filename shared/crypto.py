"""Encryption of source credentials at rest (Fernet: AES-128-CBC with HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr


class CredentialCipher:
    def __init__(self, key: SecretStr) -> None:
        try:
            self._fernet = Fernet(key.get_secret_value().encode())
            self._key = key.get_secret_value().encode()
        except ValueError as error:
            raise ValueError(
                "AUTOLOADER_CREDENTIALS_KEY must be 32 url-safe base64-encoded bytes; "
                "make one with `autoloader-api keys generate-encryption-key`"
            ) from error

    def encrypt(self, credentials: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(credentials).encode())

    def derived_key(self, purpose: str) -> bytes:
        """A key for another purpose than encryption, fixed for as long as this key is."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    def decrypt(self, token: bytes) -> dict[str, Any]:
        try:
            return dict(json.loads(self._fernet.decrypt(token)))
        except InvalidToken as error:
            raise ValueError(
                "stored credentials do not decrypt with AUTOLOADER_CREDENTIALS_KEY: "
                "the key changed since they were written"
            ) from error


def new_key() -> str:
    return Fernet.generate_key().decode()


def mask(value: str | None) -> str | None:
    """Show enough of an identifier to recognise it, nothing of a secret."""
    if value is None:
        return None
    return f"{value[:4]}****" if len(value) > 8 else "****"
