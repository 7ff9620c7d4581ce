import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auth import CHAT, LEEWAY_SECONDS, TASKS, InvalidToken, TokenVerifier, mint_token, patterns
from auth.tokens import MAX_TOKEN_CHARS

SECRET = "s" * 64  # long enough for HS512 too, so that case fails on its algorithm
OTHER_SECRET = "o" * 64


def test_a_minted_token_gives_its_claims_back():
    token = mint_token(SECRET, sub="alice", subscribe=["user:{sub}"], publish=["news"],
                       scope=[CHAT, TASKS], ttl=60)
    grant = TokenVerifier(SECRET).verify(token)
    assert grant.subject == "alice"
    assert grant.may_subscribe("user:alice") and not grant.may_subscribe("user:bob")
    assert grant.may_publish("news") and not grant.may_publish("user:alice")
    assert grant.has_scope(CHAT) and grant.has_scope(TASKS) and not grant.has_scope("logs")
    assert time.time() + 50 < grant.expires_at <= time.time() + 60


@pytest.mark.parametrize("make", [
    lambda: mint_token(OTHER_SECRET, sub="alice"),                     # another key
    lambda: jwt.encode({"sub": "alice", "exp": time.time() + 60}, None, algorithm="none"),
    lambda: mint_token(SECRET, sub="alice", ttl=1, now=time.time() - LEEWAY_SECONDS - 5),
    lambda: jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"),      # no exp
    lambda: jwt.encode({"sub": "alice", "exp": time.time() + 60,
                        "nbf": time.time() + LEEWAY_SECONDS + 60}, SECRET, algorithm="HS256"),
    lambda: jwt.encode({"sub": "alice", "exp": time.time() + 60}, SECRET, algorithm="HS512"),
    lambda: jwt.encode({"sub": 7, "exp": time.time() + 60}, SECRET, algorithm="HS256"),
    lambda: jwt.encode({"exp": time.time() + 60, "subscribe": "news"}, SECRET,
                       algorithm="HS256"),
    lambda: jwt.encode({"exp": time.time() + 60, "scope": ["chat"]}, SECRET, algorithm="HS256"),
    lambda: "not.a.token",
    lambda: "x" * (MAX_TOKEN_CHARS + 1),
], ids=["other-key", "alg-none", "expired", "no-exp", "not-yet", "other-alg", "sub-not-str",
        "subscribe-not-list", "scope-not-str", "garbage", "too-long"])
def test_an_unusable_token_is_refused_without_repeating_it(make):
    token = make()
    with pytest.raises(InvalidToken) as refused:
        TokenVerifier(SECRET).verify(token)
    assert token not in str(refused.value)


def test_an_expired_token_says_so():
    token = mint_token(SECRET, sub="a", ttl=1, now=time.time() - LEEWAY_SECONDS - 5)
    with pytest.raises(InvalidToken, match="expired") as refused:
        TokenVerifier(SECRET).verify(token)
    assert refused.value.expired


def test_the_leeway_accepts_a_token_just_past_its_exp():
    token = mint_token(SECRET, sub="a", ttl=1, now=time.time() - LEEWAY_SECONDS + 10)
    assert TokenVerifier(SECRET).verify(token).subject == "a"


def test_the_audience_is_checked_when_configured():
    verifier = TokenVerifier(SECRET, audience="streams")
    assert verifier.verify(mint_token(SECRET, sub="a", audience="streams")).subject == "a"
    for token in (mint_token(SECRET, sub="a", audience="other"), mint_token(SECRET, sub="a")):
        with pytest.raises(InvalidToken, match=r"audience|no aud claim"):
            verifier.verify(token)


def test_a_token_is_verified_once_and_again_only_past_its_leeway(monkeypatch):
    now = [time.time()]
    verifier = TokenVerifier(SECRET, clock=lambda: now[0])
    token = mint_token(SECRET, sub="a", ttl=60)
    grant = verifier.verify(token)
    decoded = []
    monkeypatch.setattr(verifier, "_decode", lambda token: decoded.append(token) or grant)
    assert verifier.verify(token) is grant and decoded == []  # from the cache
    now[0] = grant.expires_at + LEEWAY_SECONDS + 1  # the cache must not outlive the token
    verifier.verify(token)
    assert decoded == [token]


def test_a_cached_signature_never_vouches_for_another_payload():
    verifier = TokenVerifier(SECRET)
    honest = mint_token(SECRET, sub="alice", subscribe=["user:{sub}"])
    verifier.verify(honest)
    forged_payload = mint_token(OTHER_SECRET, sub="alice", scope=["admin"]).split(".")[1]
    header, _, signature = honest.split(".")
    with pytest.raises(InvalidToken):
        verifier.verify(f"{header}.{forged_payload}.{signature}")


def _pem(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("private", [
    rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ec.generate_private_key(ec.SECP256R1()),
], ids=["RS256", "ES256"])
def test_a_public_key_verifies_its_private_half_and_refuses_hmac_with_itself(private):
    public = private.public_key()
    verifier = TokenVerifier(public)
    assert verifier.verify(mint_token(private, sub="a")).subject == "a"
    # The classic confusion signs HS256 with the public key's PEM as the secret (PyJWT will
    # not build that one): any HS256 token is refused by its algorithm alone.
    confused = jwt.encode({"sub": "a", "exp": time.time() + 60}, "k" * 32, algorithm="HS256")
    with pytest.raises(InvalidToken, match=r"RS256|ES256"):
        verifier.verify(confused)


def test_public_channels_are_in_every_grant_and_in_the_anonymous_one():
    verifier = TokenVerifier(SECRET, public=patterns(["status:*"], "PUBLIC_CHANNELS"))
    assert verifier.anonymous.may_subscribe("status:api")
    assert not verifier.anonymous.may_subscribe("user:alice")
    assert verifier.verify(mint_token(SECRET, sub="a")).may_subscribe("status:db")


def test_unknown_scopes_are_ignored():
    grant = TokenVerifier(SECRET).verify(mint_token(SECRET, sub="a", scope=["chat", "future"]))
    assert grant.scopes == {"chat"}
