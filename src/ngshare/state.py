"""What every request handler needs: settings, database, blob store, authenticator."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from ngshare.auth import Authenticator
from ngshare.auth.cookies import CookieSigner
from ngshare.budget import MemoryBudget
from ngshare.config import Limits, Settings
from ngshare.db.engine import Database
from ngshare.storage import BlobStore
from ngshare.storage.encoded import EncodingCache


@dataclass
class AppState:
    settings: Settings
    db: Database
    store: BlobStore
    authenticator: Authenticator
    signer: CookieSigner
    v1_encodings: EncodingCache  # stored files as v1 clients encode them (api/v1/known.py)
    memory: MemoryBudget  # file bytes held by all requests at once (budget.py)

    @property
    def limits(self) -> Limits:
        return self.settings.limits


def get_state(request: Request) -> AppState:
    return request.app.state.ngshare


async def state_dependency(request: Request) -> AppState:
    """`get_state` as a route dependency. Async, as every dependency that does no
    blocking work: FastAPI runs a plain `def` dependency on a worker thread, a round
    trip that cost more than most of these do."""
    return get_state(request)
