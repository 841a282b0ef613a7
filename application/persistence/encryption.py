"""Encryption at rest: every stored event and snapshot state, compressed and
then encrypted with AES-GCM (the library's ``AESCipher``), when a key is set.

Keys come from ``EVENTSHOP_CIPHER_KEY`` (the current key, which encrypts
everything new) and ``EVENTSHOP_CIPHER_OLD_KEYS`` (comma-separated keys kept
only for reading what they encrypted), or from ``EVENTSHOP_CIPHER_KEY_FILE``
(first line the current key, each further line an old one). A key is 16, 24 or
32 random bytes in base64.

The stored events are immutable, so a key once used must be kept for as long
as the store holds what it encrypted: rotating means adding a new current key
and moving the old one to the old keys, never dropping it. To know which key
to decrypt with, :class:`RotatingCipher` puts a marker and a short key id
(a truncated hash of the key, which tells nothing about the key) in front of
the library's ciphertext.

:mod:`application.persistence.encryption_check` reads a few stored states
when a service starts, so that a wrong key, a missing key or a key over plain
events is a :class:`CipherKeyError` at once rather than garbage, or an
undecodable event, later. No key ever appears in a repr, a message or an
error.
"""

from __future__ import annotations

import binascii
import hashlib
import os
from base64 import b64decode, b64encode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from eventsourcing.persistence import Cipher
from eventsourcing.utils import Environment, get_topic

from application.databases import ConfigurationError

if TYPE_CHECKING:
    from eventsourcing.cryptography import AESCipher

CIPHER_KEY_VARIABLE = "EVENTSHOP_CIPHER_KEY"
CIPHER_OLD_KEYS_VARIABLE = "EVENTSHOP_CIPHER_OLD_KEYS"
CIPHER_KEY_FILE_VARIABLE = "EVENTSHOP_CIPHER_KEY_FILE"
CIPHER_VARIABLES = (
    CIPHER_KEY_VARIABLE,
    CIPHER_OLD_KEYS_VARIABLE,
    CIPHER_KEY_FILE_VARIABLE,
)
"""Every environment variable that configures encryption at rest."""

KEY_SIZES = (16, 24, 32)

# The names in a service's eventsourcing environment (the library's for the
# topics and the current key; the old keys are ours).
CIPHER_TOPIC = "CIPHER_TOPIC"
CIPHER_KEY = "CIPHER_KEY"
CIPHER_OLD_KEYS = "CIPHER_OLD_KEYS"
COMPRESSOR_TOPIC = "COMPRESSOR_TOPIC"
ZLIB_COMPRESSOR_TOPIC = "eventsourcing.compressor:ZlibCompressor"

# Not a byte JSON can start with, so a plain state is never taken for ours.
MARKER = b"\xffES1"
KEY_ID_LENGTH = 4
_HEADER_LENGTH = len(MARKER) + KEY_ID_LENGTH


class CipherKeyError(ConfigurationError):
    """Encryption at rest cannot work as configured: a malformed key, a key
    that does not decrypt the stored events, no key for encrypted events, or
    a key for events stored plain."""


@dataclass(frozen=True)
class CipherKeys:
    """The current key (encrypts) and the old keys (only decrypt), each the
    base64 text of 16, 24 or 32 bytes. Its repr shows how many, never which."""

    current: str = field(repr=False)
    old: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        # A list given for ``old`` would make the keys, and settings, unhashable.
        object.__setattr__(self, "old", tuple(self.old))
        _key_bytes(self.current, "the current cipher key")
        for number, key in enumerate(self.old, start=1):
            _key_bytes(key, f"old cipher key number {number}")

    def __repr__(self) -> str:
        return f"CipherKeys(current=<hidden>, old=<{len(self.old)} hidden>)"

    __str__ = __repr__

    @classmethod
    def parse(cls, current: str, old: Iterable[str] = ()) -> CipherKeys:
        """Keys as a person types them (surrounding blanks and empty old keys
        ignored); raises :class:`CipherKeyError` for a malformed one."""
        return cls(
            current=current.strip(),
            old=tuple(key.strip() for key in old if key.strip()),
        )

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None
    ) -> CipherKeys | None:
        """The keys ``environ`` (default: this process's) configures, or None
        when encryption is off."""
        environ = os.environ if environ is None else environ
        current = environ.get(CIPHER_KEY_VARIABLE, "").strip()
        old = environ.get(CIPHER_OLD_KEYS_VARIABLE, "").split(",")
        key_file = environ.get(CIPHER_KEY_FILE_VARIABLE, "").strip()
        has_old = any(key.strip() for key in old)
        if key_file and (current or has_old):
            raise CipherKeyError(
                f"set {CIPHER_KEY_VARIABLE} (and {CIPHER_OLD_KEYS_VARIABLE}) or "
                f"{CIPHER_KEY_FILE_VARIABLE}, not both"
            )
        if key_file:
            return cls.from_file(Path(key_file))
        if current:
            return cls.parse(current, old)
        if has_old:
            raise CipherKeyError(
                f"{CIPHER_OLD_KEYS_VARIABLE} is set without {CIPHER_KEY_VARIABLE}"
            )
        return None

    @classmethod
    def from_file(cls, path: Path) -> CipherKeys:
        """The keys in a key file: the current one on its first line, an old
        one on each further line (blank lines ignored)."""
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            reason = (
                error.strerror or type(error).__name__
                if isinstance(error, OSError)
                else "not ASCII"
            )
            raise CipherKeyError(
                f"cannot read the cipher key file {str(path)!r}: {reason}"
            ) from None
        keys = [line.strip() for line in text.splitlines() if line.strip()]
        if not keys:
            raise CipherKeyError(f"the cipher key file {str(path)!r} holds no key")
        return cls.parse(keys[0], keys[1:])

    @property
    def all(self) -> tuple[str, ...]:
        """Every key, the current one first."""
        return (self.current, *self.old)

    def environment(self) -> dict[str, str]:
        """The ``EVENTSHOP_CIPHER_*`` variables that give a child process
        these keys (by environment: a command line is readable by anyone)."""
        return {
            CIPHER_KEY_VARIABLE: self.current,
            CIPHER_OLD_KEYS_VARIABLE: ",".join(self.old),
        }


def create_key(size: int = 32) -> str:
    """A new random key of ``size`` bytes, as base64 text."""
    if size not in KEY_SIZES:
        raise CipherKeyError(f"a cipher key has 16, 24 or 32 bytes, not {size}")
    return b64encode(os.urandom(size)).decode("ascii")


def mapper_environment(
    keys: CipherKeys | None, application_names: Iterable[str] = ()
) -> dict[str, str]:
    """What a service's eventsourcing environment says about its cipher and
    compressor. Every name is set, empty when encryption is off, and so is
    each name prefixed with an application's (which the library prefers), so
    that no variable of the process's own environment can switch it on or
    off behind the settings' back."""
    if keys is None:
        plain = dict.fromkeys(
            (CIPHER_TOPIC, CIPHER_KEY, CIPHER_OLD_KEYS, COMPRESSOR_TOPIC), ""
        )
    else:
        plain = {
            CIPHER_TOPIC: get_topic(RotatingCipher),
            CIPHER_KEY: keys.current,
            CIPHER_OLD_KEYS: ",".join(keys.old),
            # Compressed before it is encrypted (the library's order):
            # ciphertext does not compress.
            COMPRESSOR_TOPIC: ZLIB_COMPRESSOR_TOPIC,
        }
    env = dict(plain)
    for name in application_names:
        env.update({f"{name.upper()}_{key}": value for key, value in plain.items()})
    return env


class NotEncryptedError(ValueError):
    """A state to decrypt that was stored plain."""


class UnknownKeyError(ValueError):
    """A state encrypted with a key that is not configured."""


class DamagedCiphertextError(ValueError):
    """A state whose key is configured but which does not decrypt with it."""


class RotatingCipher(Cipher):
    """Encrypts with the current key; decrypts with the key whose id the
    ciphertext names, the current one or an old one. Built by the library
    from a service's environment (``CIPHER_KEY``, ``CIPHER_OLD_KEYS``)."""

    def __init__(self, environment: Environment) -> None:
        # Imported here: only a shop with a key needs the cryptography package.
        from eventsourcing.cryptography import AESCipher

        keys = CipherKeys.parse(
            environment.get(CIPHER_KEY) or "",
            (environment.get(CIPHER_OLD_KEYS) or "").split(","),
        )
        self._ciphers: dict[bytes, list[AESCipher]] = {}
        for key in keys.all:
            cipher = AESCipher(Environment(env={AESCipher.CIPHER_KEY: key}))
            self._ciphers.setdefault(key_id(key), []).append(cipher)
        self._current_id = key_id(keys.current)
        self._current = self._ciphers[self._current_id][0]

    def encrypt(self, plaintext: bytes) -> bytes:
        return MARKER + self._current_id + self._current.encrypt(plaintext)

    def decrypt(self, ciphertext: bytes) -> bytes:
        # ValueErrors, which the library's mapper reports as a
        # MapperDeserialisationError naming the event.
        if not ciphertext.startswith(MARKER):
            raise NotEncryptedError("the state is not encrypted")
        candidates = self._ciphers.get(key_id_of(ciphertext) or b"")
        if not candidates:
            raise UnknownKeyError(
                "it was encrypted with a key that is neither the current cipher "
                f"key nor an old one ({CIPHER_OLD_KEYS_VARIABLE}): a wrong key, "
                "or an old key dropped"
            )
        for cipher in candidates:
            try:
                return cipher.decrypt(ciphertext[_HEADER_LENGTH:])
            except ValueError:
                continue
        raise DamagedCiphertextError("it does not decrypt with its key: damaged")


def key_id(key: str) -> bytes:
    """A short id of ``key``: enough to pick it among a few, useless to
    recover it."""
    digest = hashlib.sha256(b"eventshop cipher key id\x00" + b64decode(key))
    return digest.digest()[:KEY_ID_LENGTH]


def key_id_of(state: bytes) -> bytes | None:
    """The id of the key a stored state was encrypted with; None if it was
    stored plain."""
    if not state.startswith(MARKER):
        return None
    return state[len(MARKER) : _HEADER_LENGTH]


def _key_bytes(key: str, what: str) -> bytes:
    try:
        raw = b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CipherKeyError(f"{what} is not base64 text") from None
    if len(raw) not in KEY_SIZES:
        raise CipherKeyError(
            f"{what} is {len(raw)} bytes long; an AES key has 16, 24 or 32"
        )
    return raw
