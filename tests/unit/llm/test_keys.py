"""Tests for llm.keys: names, limits and the lookup of client keys."""

from __future__ import annotations

import pytest

import config
from llm.keys import ANONYMOUS, ClientKey, ClientKeys

FILE_KEYS = ({"name": "team-a", "key": "sk-a", "rpm": 60, "tpm": 1000},
             {"name": "team-b", "key": "sk-b", "rpm": None, "tpm": None})


def _keys(**settings) -> ClientKeys:
    return ClientKeys.from_settings({**config.load({}), **settings})


def test_file_keys_keep_their_names_and_listed_keys_are_named_by_position():
    keys = _keys(PROXY_KEYS_FILE=FILE_KEYS, PROXY_API_KEYS=("sk-x", "sk-y"))
    assert keys.lookup("Bearer sk-a") == ClientKey("team-a", 60, 1000)
    assert keys.lookup("Bearer sk-b") == ClientKey("team-b")
    assert keys.lookup("Bearer sk-x") == ClientKey("key-1")
    assert keys.lookup("Bearer sk-y") == ClientKey("key-2")
    assert keys.lookup("Bearer sk-z") is None


def test_a_keys_file_alone_requires_a_key():
    keys = _keys(PROXY_KEYS_FILE=FILE_KEYS)
    assert keys.required
    assert keys.lookup(None) is None
    assert keys.lookup("Bearer sk-a").name == "team-a"


@pytest.mark.parametrize("settings", [{}, {"PROXY_API_KEYS": ("sk-x",)}])
def test_without_an_upstream_key_or_a_keys_file_anyone_is_anonymous(settings):
    keys = _keys(**settings)
    assert not keys.required
    assert keys.lookup(None) is ANONYMOUS
    assert keys.lookup("Bearer sk-x") is ANONYMOUS
    assert not ANONYMOUS.limited


def test_keys_are_kept_as_digests_only():
    keys = _keys(PROXY_KEYS_FILE=FILE_KEYS, PROXY_API_KEYS=("sk-x",))
    assert "sk-a" not in repr(vars(keys)) and "sk-x" not in repr(vars(keys))


def test_a_key_is_limited_by_either_limit():
    assert ClientKey("a", rpm=1).limited and ClientKey("a", tpm=1).limited
    assert not ClientKey("a").limited


def test_keys_are_found_by_name():
    keys = _keys(PROXY_KEYS_FILE=FILE_KEYS)
    assert keys.by_name("team-a") == ClientKey("team-a", 60, 1000)
    assert keys.by_name("nobody") is None
