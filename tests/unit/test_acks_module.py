"""Unit tests of the acknowledgements a hypervisor keeps (_modules/ucarp.py):
``ucarp.ack``, ``ucarp.ack_many`` and the acknowledgements a holders round
carries, in a real acks file under a temporary cachedir."""

import pytest
from salt.exceptions import CommandExecutionError
from support import load_salt_module

ZONE_A = "2d1b2f5e-0c6a-4a3e-9c1d-6f7e8a9b0c1d"
KEY_A = f"{ZONE_A}/web/transition"
KEY_H = f"{ZONE_A}/web/health"
CLUSTERS = {
    "web": {
        "vip": "192.0.2.100",
        "vhid": 101,
        "password": "s3cret",
        "nodes": {"web-a": {"host": "gz1", "ip": "192.0.2.11"}, "web-b": {"host": "gz2", "ip": "192.0.2.12"}},
    },
}


@pytest.fixture
def ucarp(tmp_path):
    config = {"ucarp:clusters": CLUSTERS, "ucarp:defaults": {}}
    calls = []

    def run_each(commands):
        calls.append(("zlogin.run_each", sorted(commands)))
        return {z: {"retcode": 0, "stdout": "inet 192.0.2.100 netmask ffffff00\n"} for z in commands}

    salt = {
        "config.get": lambda key, default=None: config.get(key, default),
        "vmadm.state": lambda zone: calls.append(("vmadm.state", zone)) or "running",
        "zlogin.run_each": run_each,
    }
    module = load_salt_module("_modules", "ucarp", salt=salt, opts={"id": "gz1", "cachedir": str(tmp_path)})
    module.calls = calls
    return module


def test_ack_many_keeps_this_minions_part_in_one_write(ucarp):
    got = ucarp.ack_many(
        {
            "gz1": {KEY_A: {"epoch": "", "seq": 3}, KEY_H: {"epoch": "", "seq": 1}},
            "gz2": {f"{'0' * 8}-0000-4000-8000-{'0' * 12}/web/transition": {"epoch": "", "seq": 9}},
        }
    )
    assert {k: v["seq"] for k, v in got.items()} == {KEY_A: 3, KEY_H: 1}
    assert {k: v["seq"] for k, v in ucarp.acks().items()} == {KEY_A: 3, KEY_H: 1}  # not gz2's
    ucarp.ack_many({"gz1": {KEY_A: {"epoch": "", "seq": 2}}})  # an older one changes nothing
    assert ucarp.acks()[KEY_A]["seq"] == 3
    assert ucarp.ack(KEY_A, 5)["seq"] == 5  # the one-key call, the same file
    assert ucarp.ack_many({"gz2": {}}) == {}


GOOD = {KEY_H: {"epoch": "", "seq": 1}}  # given beside each bad one: all or none is kept


@pytest.mark.parametrize(
    "acks, message",
    [
        ([], "acks must map minion ids"),
        ({"gz1": [KEY_A]}, "the acks for gz1 must map record keys to cursors"),
        ({"gz1": dict(GOOD, **{"../../etc/passwd": {"seq": 1}})}, "is not a record key"),
        ({"gz1": dict(GOOD, **{KEY_A: 4})}, "is not a cursor"),
        ({"gz1": dict(GOOD, **{KEY_A: {"seq": -1}})}, "bad epoch"),
        ({"gz1": dict(GOOD, **{KEY_A: {"seq": True}})}, "bad epoch"),
        ({"gz1": dict(GOOD, **{KEY_A: {"seq": 1, "epoch": "x; rm"}})}, "bad epoch"),
    ],
)
def test_malformed_acknowledgements_are_refused_and_none_is_kept(ucarp, acks, message):
    with pytest.raises(CommandExecutionError, match=message):
        ucarp.ack_many(acks)
    assert ucarp.acks() == {}


def test_a_holders_round_keeps_the_acknowledgements_it_carries_and_answers(ucarp):
    got = ucarp.holders("web", acks={"gz1": {KEY_A: {"epoch": "", "seq": 2}}})
    assert got == {"web-a": True}
    assert ucarp.acks()[KEY_A]["seq"] == 2
    assert ucarp.holders("web", acks={"gz2": {KEY_A: {"epoch": "", "seq": 7}}}) == {"web-a": True}
    assert ucarp.acks()[KEY_A]["seq"] == 2  # another minion's part is not this one's


def test_a_holders_round_with_malformed_acknowledgements_does_nothing(ucarp):
    with pytest.raises(CommandExecutionError, match="is not a record key"):
        ucarp.holders("web", acks={"gz1": {"nonsense": {"seq": 1}}})
    assert ucarp.acks() == {} and ucarp.calls == []  # nothing asked of a zone either


def test_holders_many_answers_each_cluster_with_one_question_per_zone(ucarp):
    CLUSTERS["db"] = {
        "vip": "192.0.2.110",
        "vhid": 102,
        "password": "s3cret",
        "nodes": {"db-a": {"host": "gz1", "ip": "192.0.2.21"}, "db-b": {"host": "gz2", "ip": "192.0.2.22"}},
    }
    try:
        got = ucarp.holders_many(
            [{"cluster": "web"}, {"cluster": "nope"}, {"cluster": "db", "after": None}],
            acks={"gz1": {KEY_A: {"epoch": "", "seq": 4}}},
        )
    finally:
        del CLUSTERS["db"]
    assert got == [
        {"answer": {"web-a": True}},
        {"error": "ucarp: no cluster 'nope' in pillar"},
        {"answer": {"db-a": False}},  # its ifconfig shows web's VIP, not db's
    ]
    assert [c for c in ucarp.calls if c[0] == "zlogin.run_each"] == [("zlogin.run_each", ["db-a", "web-a"])]
    assert ucarp.acks()[KEY_A]["seq"] == 4


@pytest.mark.parametrize(
    "asks",
    [[], {"cluster": "web"}, [{"cluster": 7}], [{"cluster": "web", "zone": "x"}], [{"cluster": "web"}] * 257],
)
def test_holders_many_refuses_malformed_asks(ucarp, asks):
    with pytest.raises(CommandExecutionError, match="ucarp.holders_many"):
        ucarp.holders_many(asks, acks={"gz1": {KEY_A: {"epoch": "", "seq": 4}}})
    assert ucarp.acks() == {} and ucarp.calls == []
