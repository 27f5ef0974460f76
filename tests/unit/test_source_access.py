"""Each set of source credentials reaches S3A under a scheme of its own, named by a keyed digest."""

from __future__ import annotations

from pydantic import SecretStr

from autoloader_processor.reading import PerCredentials, source_access, spark_identity
from shared.crypto import CredentialCipher, new_key
from shared.spec import S3Credentials


def test_keys_are_named_by_a_keyed_digest_never_by_themselves() -> None:
    keys = S3Credentials(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=SecretStr("s3cr3t"))
    rotated = keys.model_copy(update={"aws_secret_access_key": SecretStr("n3w")})
    first, again = source_access(keys, b"k" * 32), source_access(keys, b"k" * 32)
    schemes = {
        first.scheme,
        source_access(rotated, b"k" * 32).scheme,
        source_access(keys, b"j" * 32).scheme,
        source_access(None, b"k" * 32).scheme,
    }

    assert first == again and len(schemes) == 4
    assert "AKIDEXAMPLE" not in first.scheme and "s3cr3t" not in first.scheme
    assert first.path("s3://b/a [1]/x?.json") == f"{first.scheme}://b/a \\[1\\]/x\\?.json"


def test_spark_names_under_the_scheme_map_back_to_the_batch_path() -> None:
    access = source_access(None, b"k" * 32)
    named = f"{access.scheme}://b/M%C3%A4rz+Bestellungen/a%20b.json"

    assert spark_identity(named) == "s3://b/März+Bestellungen/a b.json"
    assert spark_identity("file:///tmp/x.json") == "file://tmp/x.json"


def test_the_service_key_gives_every_processor_the_same_schemes() -> None:
    """One filesystem per set of keys on the Spark server, whichever processor reads."""
    key = SecretStr(new_key())
    first, second = CredentialCipher(key), CredentialCipher(key)
    other = CredentialCipher(SecretStr(new_key()))

    derived = first.derived_key("filesystem-scheme")
    assert derived == second.derived_key("filesystem-scheme")
    assert derived not in (other.derived_key("filesystem-scheme"), first.derived_key("x"))


def test_clients_are_kept_per_credentials_and_the_least_recently_used_dropped() -> None:
    made: list[str] = []

    def make(key: str) -> object:
        made.append(key)
        return object()

    clients: PerCredentials[object] = PerCredentials(2)
    a = clients.get("a", lambda: make("a"))
    clients.get("b", lambda: make("b"))
    assert clients.get("a", lambda: make("a")) is a  # kept, and now the most recent
    clients.get("c", lambda: make("c"))  # drops b, the least recently used
    assert clients.get("a", lambda: make("a")) is a
    clients.get("b", lambda: make("b"))
    assert made == ["a", "b", "c", "b"]
