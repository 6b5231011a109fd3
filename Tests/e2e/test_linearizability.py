"""The linearizability checker (linearizability.py), on histories known to be linearizable
or not, so a checker that accepts everything cannot pass. The three-host scenario it is for is
test_linearizability_hosts.py."""
import math

import pytest

from linearizability import UNKNOWN, Operation, check


def op(process, kind, key, value=None, output=None, call=0, ret=0):
    return Operation(process, kind, key, value, output, call, ret)


def test_the_checker_accepts_a_linearizable_history():
    history = [
        op("a", "write", "k", "1", None, 0, 10),  # concurrent with both reads
        op("b", "read", "k", None, None, 1, 2),
        op("c", "read", "k", None, "1", 3, 4),
        op("c", "delete", "k", None, True, 11, 12),
        op("a", "read", "k", None, None, 13, 14),
        op("b", "write", "k", "2", UNKNOWN, 15, math.inf),  # the daemon died under it
        op("a", "read", "k", None, "2", 20, 21),
    ]
    assert check(history).linearizable


@pytest.mark.parametrize("history", [
    # a read of a value already overwritten on another host
    [op("a", "write", "k", "1", None, 0, 1), op("a", "write", "k", "2", None, 2, 3), op("b", "read", "k", None, "1", 4, 5)],
    # an acknowledged write lost
    [op("a", "write", "k", "1", None, 0, 1), op("b", "read", "k", None, None, 2, 3)],
    # a deleted file back
    [op("a", "write", "k", "1", None, 0, 1), op("a", "delete", "k", None, True, 2, 3), op("b", "read", "k", None, "1", 4, 5)],
    # a write of unknown outcome seen, then unseen
    [op("a", "write", "k", "1", UNKNOWN, 0, math.inf), op("b", "read", "k", None, "1", 4, 5), op("b", "read", "k", None, None, 6, 7)],
    # two deletes of one file both succeeding
    [op("a", "write", "k", "1", None, 0, 1), op("b", "delete", "k", None, True, 2, 5), op("c", "delete", "k", None, True, 3, 6)],
], ids=["stale-read", "lost-write", "resurrection", "flicker", "double-delete"])
def test_the_checker_rejects_what_is_not_linearizable(history):
    verdict = check(history)
    assert not verdict.linearizable
    assert verdict.key == "k"


