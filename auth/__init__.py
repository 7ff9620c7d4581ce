"""Who may watch what: signed tokens (JWT) and the rights they grant (see docs/auth.md)."""

from .grant import ADMIN, CHAT, LOGS, SCOPES, TASKS, UNRESTRICTED, Grant
from .ownership import new_owned_id, owned_by
from .patterns import ChannelPattern, any_matches, patterns
from .tokens import LEEWAY_SECONDS, InvalidToken, TokenVerifier, algorithm_for, mint_token

__all__ = [
    "ADMIN",
    "CHAT",
    "LEEWAY_SECONDS",
    "LOGS",
    "SCOPES",
    "TASKS",
    "UNRESTRICTED",
    "ChannelPattern",
    "Grant",
    "InvalidToken",
    "TokenVerifier",
    "algorithm_for",
    "any_matches",
    "mint_token",
    "new_owned_id",
    "owned_by",
    "patterns",
]
