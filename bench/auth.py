"""What checking a token costs: in process for each algorithm, and on the server per new stream.

- In process: `TokenVerifier.verify` per call for HS256, RS256 and ES256 (keys made here with
  `cryptography`). Uncached is a token the verifier has never seen, what a new stream pays: each
  round has a new verifier, so the same minted tokens are new to it. Cached is one token again.
  Beside them, PyJWT's `jwt.decode` alone and the signature check alone (PyJWT's algorithm object
  over `cryptography` or `hmac`), so the table shows what bounds the figure. Median of rounds.
- The request side: `blueprints.access.current_grant` in a request context of the real app (HS256,
  the token in `Authorization`), beside the request context alone.
- cProfile of uncached verifies, per algorithm: `results/profile_auth_verify.txt`.
- On the server, one worker each: auth off; AUTH_SECRET with a token of its own on every stream
  (`loadgen --header-file`, new tokens every round, so the cache never answers); AUTH_SECRET with
  one token on every stream. The worker's CPU per short stream one after another
  (`connections.cpu_rounds`), then 500 paced `/sse/chat` streams opened at once
  (`harness.burst_rounds`), in alternated rounds. The ratio to auth off is the median of the
  rounds' own ratios: a neighbour's load lands on one round of both servers.
"""

from __future__ import annotations

import cProfile
import itertools
import pstats
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from io import StringIO
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.utils import base64url_decode

from app import create_app
from auth import CHAT, LEEWAY_SECONDS, TokenVerifier, mint_token
from bench import connections
from bench.connections import SHORT, cpu_per_stream, cpu_rounds
from bench.harness import Size, burst_rounds, markdown_table, ours, p50_p99, serving
from blueprints.access import current_grant

ALGORITHMS = ("HS256", "RS256", "ES256")
OFF, OWN, SAME = "auth off", "auth on, a token per stream", "auth on, one token for all"
TARGET_US = 100
TARGET_RATIO = 1.10

Check = Callable[[str], object]


def keys(algorithm: str) -> tuple[object, object]:
    """A new (signing, verifying) key pair: an AUTH_SECRET, or an RSA 2048 / P-256 key."""
    if algorithm == "HS256":
        secret = secrets.token_urlsafe(32)
        return secret, secret
    private = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
               if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1()))
    return private, private.public_key()


def minted(key: object, count: int, prefix: str) -> list[str]:
    """`count` distinct tokens of the kind a chat client holds."""
    return [mint_token(key, sub=f"{prefix}-{n}", subscribe=["user:{sub}"], scope=[CHAT])
            for n in range(count)]


def _us_per_call(check: Check, tokens: list[str]) -> float:
    began = time.perf_counter()
    for token in tokens:
        check(token)
    return (time.perf_counter() - began) / len(tokens) * 1e6


def per_call_us(checks: dict[str, tuple[Callable[[], Check], list[str]]], rounds: int) -> dict:
    """µs per call of each check over its tokens, in `rounds` rounds that alternate the checks'
    order; every round makes a new check (a new verifier: an empty cache). Per check: the
    median round, and every round."""
    samples: dict[str, list[float]] = {name: [] for name in checks}
    names = list(checks)
    for make_check, tokens in checks.values():
        _us_per_call(make_check(), tokens[:10])  # the first calls import and set up lazily
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            make_check, tokens = checks[name]
            samples[name].append(_us_per_call(make_check(), tokens))
    return {name: {"us": statistics.median(runs), "us_rounds": [round(s, 2) for s in runs]}
            for name, runs in samples.items()}


def _signature_check(algorithm: str, key: object) -> Check:
    method = jwt.get_algorithm_by_name(algorithm)
    prepared = method.prepare_key(key)

    def check(token: str) -> None:
        signing_input, _, signature = token.rpartition(".")
        if not method.verify(signing_input.encode(), prepared, base64url_decode(signature)):
            raise RuntimeError("a minted token's signature does not verify")
    return check


def _decode_check(algorithm: str, key: object) -> Check:
    return lambda token: jwt.decode(token, key, algorithms=[algorithm], leeway=LEEWAY_SECONDS,
                                    options={"require": ["exp"]})


def _warm_verifier(key: object, token: str) -> Check:
    verifier = TokenVerifier(key)
    verifier.verify(token)
    return verifier.verify


def _algorithm_costs(algorithm: str, verifying: object, tokens: list[str], rounds: int) -> dict:
    return per_call_us({
        "signature": (lambda: _signature_check(algorithm, verifying), tokens),
        "jwt_decode": (lambda: _decode_check(algorithm, verifying), tokens),
        "uncached": (lambda: TokenVerifier(verifying).verify, tokens),
        "cached": (lambda: _warm_verifier(verifying, tokens[0]), tokens[:1] * len(tokens) * 10),
    }, rounds)


def verify_costs(size: Size) -> tuple[dict, dict]:
    """Per algorithm: µs per call of each check; and what the profile needs (key, tokens)."""
    count, rounds = size.pick(1000, 300, 20), size.pick(9, 5, 1)
    results, material = {}, {}
    for algorithm in ALGORITHMS:
        signing, verifying = keys(algorithm)
        tokens = minted(signing, count, algorithm)
        material[algorithm] = (verifying, tokens)
        results[algorithm] = _algorithm_costs(algorithm, verifying, tokens, rounds)
    return results, material


def _in_request(app, grant: bool) -> Check:
    def check(token: str) -> None:
        with app.test_request_context("/sse/chat", headers={"Authorization": f"Bearer {token}"}):
            if grant:
                current_grant()
    return check


def request_costs(size: Size) -> dict:
    """µs per request context of the real app: alone, and with `current_grant()` in it."""
    count, rounds = size.pick(1000, 300, 20), size.pick(9, 5, 1)
    secret = secrets.token_urlsafe(32)
    tokens = minted(secret, count, "request")
    auth_off = create_app()

    def warm(app) -> Check:
        check = _in_request(app, grant=True)
        check(tokens[0])
        return check
    return per_call_us({
        "context alone": (lambda: _in_request(auth_off, grant=False), tokens),
        "current_grant, auth off": (lambda: _in_request(auth_off, grant=True), tokens),
        # A new app each round: its verifier has not seen the tokens.
        "current_grant, HS256, new token": (
            lambda: _in_request(create_app({"AUTH_SECRET": secret}), grant=True), tokens),
        "current_grant, HS256, cached": (
            lambda: warm(create_app({"AUTH_SECRET": secret})), tokens[:1] * count),
    }, rounds)


def profile(material: dict) -> str:
    """cProfile's table (by own time) of uncached verifies, per algorithm."""
    text = StringIO()
    for algorithm, (verifying, tokens) in material.items():
        verifier, profiler = TokenVerifier(verifying), cProfile.Profile()
        profiler.enable()
        for token in tokens:
            verifier.verify(token)
        profiler.disable()
        text.write(f"\n{algorithm}: {len(tokens)} new tokens, TokenVerifier.verify\n")
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("tottime").print_stats(15)
    return "cProfile over uncached verifies (bench/auth.py)\n" + text.getvalue()


def bearer_lines(tokens: Iterable[str]) -> str:
    """A `loadgen --header-file`: one `Authorization` header a line, a connection each."""
    return "".join(f"Authorization: Bearer {token}\n" for token in tokens)


def paired_ratio(measured: list[float], reference: list[float]) -> float:
    """The median of round-by-round ratios of two servers' figures."""
    if len(measured) != len(reference) or not measured:
        raise ValueError("one figure of each server per round is needed")
    return statistics.median(m / r for m, r in zip(measured, reference, strict=True))


def _token_files(secret: str, count: int, scratch: Path) -> Callable[..., tuple[str, ...]]:
    """Load-client arguments with `count` tokens never used before, on every call."""
    calls = itertools.count()

    def arguments(*_round: int) -> tuple[str, ...]:
        n = next(calls)
        path = scratch / f"tokens-{n}"
        path.write_text(bearer_lines(minted(secret, count, f"stream-{n}")))
        return "--header-file", str(path)
    return arguments


def on_the_server(size: Size) -> dict:
    secret = secrets.token_urlsafe(32)
    conns, sequential = size.pick(500, 500, 20), size.pick(2000, 500, 20)
    one_token = ("--header", f"Authorization: Bearer {minted(secret, 1, 'shared')[0]}")
    with tempfile.TemporaryDirectory() as scratch, \
            serving(ours) as off, serving(lambda: ours(AUTH_SECRET=secret)) as own, \
            serving(lambda: ours(AUTH_SECRET=secret)) as same:
        servers = {OFF: off, OWN: own, SAME: same}
        per_stream = _token_files(secret, sequential, Path(scratch))
        arguments = {off.url: lambda: (), own.url: per_stream, same.url: lambda: one_token}
        cpu = cpu_rounds(servers, lambda s: cpu_per_stream(s, s.url + SHORT, sequential,
                                                           *arguments[s.url]()),
                         size.pick(7, 3, 1))
        paced = f"/sse/chat?prompt=paced&tokens={size.paced_tokens}&delay_ms=20"
        burst = burst_rounds({name: s.url + paced for name, s in servers.items()},
                             size.ideal_ms(), conns, size.pick(7, 3, 1), size, "auth",
                             own={OWN: _token_files(secret, conns, Path(scratch)),
                                  SAME: lambda _: one_token})
    for name in (OWN, SAME):
        burst[name]["p99_over_auth_off"] = paired_ratio(burst[name]["first_token_p99_rounds"],
                                                        burst[OFF]["first_token_p99_rounds"])
        cpu[name]["over_auth_off_us"] = cpu[name]["cpu_us"] - cpu[OFF]["cpu_us"]
    return {name: {"cpu_per_stream": cpu[name], "burst": burst[name]} for name in servers}


def stream_profile(size: Size) -> str:
    """cProfile over a worker with AUTH_SECRET serving short streams, each with its own token."""
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as scratch:
        tokens = _token_files(secret, size.pick(2000, 500, 20), Path(scratch))
        return connections.profile(size, SHORT, *tokens(), top=30,
                                   env={"AUTH_SECRET": secret})


def run(size: Size) -> dict:
    verify, material = verify_costs(size)
    (size.results / "profile_auth_verify.txt").write_text(profile(material))
    (size.results / "profile_auth_stream.txt").write_text(stream_profile(size))
    return {"verify": verify, "request": request_costs(size), "server": on_the_server(size)}


def _us(figure: dict) -> str:
    return f"{figure['us']:,.1f} µs" if figure["us"] >= 1 else f"{figure['us']:.2f} µs"


def table(results: dict) -> str:
    verify = markdown_table(results["verify"], [
        ("signature check alone", lambda f: _us(f["signature"])),
        ("`jwt.decode`", lambda f: _us(f["jwt_decode"])),
        (f"`TokenVerifier.verify`, new token (target < {TARGET_US} µs)",
         lambda f: _us(f["uncached"])),
        ("`TokenVerifier.verify`, cached", lambda f: _us(f["cached"]))])
    alone = results["request"]["context alone"]["us"]
    request = ["| in a request context of the app | per request | over the context alone |",
               "|---|---|---|"]
    for name, figure in results["request"].items():
        added = "" if name == "context alone" else f"{figure['us'] - alone:+.1f} µs"
        request.append(f"| {name} | {_us(figure)} | {added} |")
    server = markdown_table(results["server"], [
        ("worker CPU per short stream, one after another",
         lambda f: f"{f['cpu_per_stream']['cpu_us']:.0f} µs"),
        ("over auth off", lambda f: f"{f['cpu_per_stream'].get('over_auth_off_us', 0):+.0f} µs"),
        ("500 x 100 x 20 ms: first token p50 / p99",
         lambda f: p50_p99(f["burst"]["first_token_ms"])),
        ("500 x 100 x 20 ms: response head p50 / p99",
         lambda f: p50_p99(f["burst"]["head_ms"])),
        (f"first token p99 / auth off's, median of rounds (target <= {TARGET_RATIO:.2f})",
         lambda f: f"{f['burst'].get('p99_over_auth_off', 1):.2f}"),
        ("completion p50 / ideal", lambda f: f"{f['burst']['completion_ratio']:.2f}")])
    return "\n\n".join((verify, "\n".join(request), server))
