from auth import ADMIN, UNRESTRICTED, Grant, new_owned_id, owned_by, patterns


def test_an_id_belongs_to_its_owner_only():
    alices = new_owned_id("alice")
    assert len(alices) == 32 and int(alices, 16) >= 0
    assert owned_by(alices, "alice")
    assert not owned_by(alices, "bob")
    assert not owned_by(alices, None)
    assert new_owned_id("alice") != alices


def test_a_grant_owns_what_its_subject_started_and_admin_owns_everything():
    alice, bob = Grant(subject="alice"), Grant(subject="bob")
    started = new_owned_id("alice")
    assert alice.owns(started) and not bob.owns(started)
    assert Grant(subject="root", scopes=frozenset({ADMIN})).owns(started)
    assert UNRESTRICTED.owns(started) and UNRESTRICTED.owns(new_owned_id(None))


def test_a_grant_without_subject_owns_nothing_not_even_ownerless_ids():
    assert not Grant(subject=None).owns(new_owned_id(None))


def test_admin_reaches_every_channel_but_not_the_other_scopes():
    admin = Grant(subject="root", scopes=frozenset({ADMIN}))
    assert admin.may_subscribe("user:alice") and admin.may_publish("anything")
    assert not admin.has_scope("chat")


def test_patterns_use_the_grants_own_subject():
    grant = Grant(subject="alice", subscribe=patterns(["user:{sub}"], "subscribe"))
    assert grant.may_subscribe("user:alice") and not grant.may_subscribe("user:bob")
