"""How delivery details are stored: the customer id in clear, the rest sealed
with AES-GCM under the customer's key, with a fresh nonce each time and the
customer id as associated data (so a sealed value cannot be passed off as
another customer's). Once the key is gone they decode as the forgotten marker.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Transcoding

from application.privacy.key_store import CustomerKeyStore
from domain.errors import CustomerForgottenError
from domain.values import DeliveryDetails

NONCE_BYTES = 12


class UnreadablePersonalDataError(ValueError):
    """Sealed personal data that its customer's key does not open: altered,
    or sealed under another key. Says which customer, never the key."""


class SealedDeliveryDetails(Transcoding):
    type = DeliveryDetails
    name = "delivery_details"

    def __init__(self, keys: Callable[[], CustomerKeyStore]) -> None:
        # Asked for when used: the service opens its key store after the
        # library has set up (and registered this).
        self._store = keys

    @property
    def _keys(self) -> CustomerKeyStore:
        return self._store()

    def encode(self, obj: DeliveryDetails) -> dict[str, Any]:
        customer_id = obj.customer_id
        if obj.forgotten:
            return {"customer_id": customer_id, "forgotten": True}
        try:
            key = self._keys.ensure_key(customer_id)
        except CustomerForgottenError:
            # Forgotten since these details were read: keep nothing of them.
            return {"customer_id": customer_id, "forgotten": True}
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps([obj.name, obj.email, obj.address]).encode()
        sealed = AESGCM(key).encrypt(nonce, plain, customer_id.encode())
        return {
            "customer_id": customer_id,
            "sealed": base64.b64encode(nonce + sealed).decode("ascii"),
        }

    def decode(self, data: dict[str, Any]) -> DeliveryDetails:
        customer_id = data["customer_id"]
        sealed = data.get("sealed")
        if sealed is None:
            return DeliveryDetails.forgotten_for(customer_id)
        try:
            key = self._keys.key_of(customer_id)
        except LookupError:
            raise UnreadablePersonalDataError(
                f"customer {customer_id!r} has no key for their sealed details"
            ) from None
        if key is None:
            return DeliveryDetails.forgotten_for(customer_id)
        raw = base64.b64decode(sealed)
        try:
            plain = AESGCM(key).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], customer_id.encode()
            )
        except InvalidTag:
            raise UnreadablePersonalDataError(
                f"the sealed details of customer {customer_id!r} do not open"
            ) from None
        name, email, address = json.loads(plain)
        return DeliveryDetails(customer_id, name, email, address)
