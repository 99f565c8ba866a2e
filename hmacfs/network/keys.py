"""Who a client profile describes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from hmacfs.network.estimate import NetworkClass


@dataclass(frozen=True)
class ClientKey:
    """Who a profile describes."""

    account_id: uuid.UUID | None
    client_id: str
    network_class: NetworkClass

    @property
    def key(self) -> str:
        owner = "anonymous" if self.account_id is None else str(self.account_id)
        return f"{owner}:{self.client_id}:{self.network_class.value}"
