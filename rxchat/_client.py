"""The clients' former home, kept so that ``from rxchat._client import ...`` keeps working.

The async client lives in :mod:`rxchat._client_async`, the sync one in :mod:`rxchat._client_sync`
and the request parameters in :mod:`rxchat._params`; import the public names from ``rxchat``.
"""

from ._client_async import AsyncChat as AsyncChat
from ._client_async import AsyncClient as AsyncClient
from ._client_async import AsyncCompletions as AsyncCompletions
from ._client_sync import Chat as Chat
from ._client_sync import Client as Client
from ._client_sync import Completions as Completions
from ._params import NOT_GIVEN as NOT_GIVEN
from ._params import NotGiven as NotGiven

__all__ = [
    "NOT_GIVEN",
    "AsyncChat",
    "AsyncClient",
    "AsyncCompletions",
    "Chat",
    "Client",
    "Completions",
    "NotGiven",
]
