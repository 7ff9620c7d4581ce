"""`flask token`: a signed token for an operator or a test, with the server's own key.

An application that signs in its users mints their tokens with `auth.mint_token` instead.
"""

from __future__ import annotations

import click
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from flask import Blueprint, current_app

from auth import SCOPES, algorithm_for, mint_token

bp = Blueprint("tokens", __name__, cli_group=None)


@bp.cli.command("token")
@click.option("--sub", help="The subject (a user id) the token speaks for.")
@click.option("--subscribe", multiple=True, metavar="PATTERN",
              help="A channel pattern it may subscribe to (repeat for more): news, "
                   "orders:*, user:{sub}.")
@click.option("--publish", multiple=True, metavar="PATTERN",
              help="A channel pattern it may publish to (repeat for more).")
@click.option("--scope", multiple=True, metavar="SCOPES",
              help="Features it may use, space-separated or repeated: "
                   f"{', '.join(sorted(SCOPES))}.")
@click.option("--ttl", type=click.IntRange(1), default=3600, show_default=True,
              help="Seconds until it expires.")
@click.option("--private-key", type=click.File("rb"),
              help="The PEM private key to sign with, when the server has AUTH_PUBLIC_KEY.")
def token_command(sub: str | None, subscribe: tuple[str, ...], publish: tuple[str, ...],
                  scope: tuple[str, ...], ttl: int, private_key) -> None:
    """Print a token signed with AUTH_SECRET (or --private-key), for AUTH_AUDIENCE if set."""
    config = current_app.config
    scopes = [name for given in scope for name in given.split()]
    if unknown := sorted(set(scopes) - SCOPES):
        raise click.BadParameter(f"unknown scope {', '.join(unknown)}", param_hint="--scope")
    key = _signing_key(config["AUTH_SECRET"], config["AUTH_PUBLIC_KEY"], private_key)
    try:
        token = mint_token(key, sub=sub, subscribe=subscribe, publish=publish, scope=scopes,
                           ttl=ttl, audience=config["AUTH_AUDIENCE"] or None)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    click.echo(token)


def _signing_key(secret: str, public_key, private_key):
    if private_key is not None:
        try:
            key = load_pem_private_key(private_key.read(), password=None)
            algorithm_for(key)
        except (ValueError, TypeError) as exc:
            raise click.BadParameter(f"not a usable PEM private key: {exc}",
                                     param_hint="--private-key") from None
        return key
    if secret:
        return secret
    if public_key is not None:
        raise click.UsageError("the server verifies with AUTH_PUBLIC_KEY: sign with "
                               "--private-key FILE (its private half)")
    raise click.UsageError("auth is off: set AUTH_SECRET (or AUTH_PUBLIC_KEY and pass "
                           "--private-key) to mint tokens")
