"""A linearizability checker for histories of file operations (Wing & Gong's search with
Lowe's memoization, as Porcupine and Knossos do it), for the many-hosts tests.

A history is a list of `Operation`s, each with the times it was called and returned (one clock
for every process: CLOCK_MONOTONIC on one machine). It is linearizable when every operation
can be given one instant between its call and its return such that, taken in the order of
those instants, the operations are a legal sequential run of the model, each with the output
it really returned. An operation whose outcome is unknown (it failed in a way that does not
say whether it took effect: the daemon died, the connection dropped) has no return: it may
take effect at any instant after its call, or never, and its output is not checked.

The model is a map of registers — one per file name, each absent or holding a value — checked
one name at a time: operations on distinct names are independent, and a history is
linearizable if and only if each name's part is (linearizability is compositional), which
keeps every search small.

Operations on a name:
  write(v)  the file now holds v (made elsewhere and renamed onto the name); output None
  read      output the value the name holds, or None when there is no such file
  delete    output True when a file was unlinked, False when there was none (ENOENT)
"""
from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

UNKNOWN = object()  # the output of an operation whose outcome is unknown


@dataclasses.dataclass
class Operation:
    process: str
    kind: str  # "write", "read" or "delete"
    key: str
    value: object  # the value written (write), else None
    output: object  # what it returned, or UNKNOWN
    call: int
    ret: float  # math.inf when the outcome is unknown

    def __str__(self) -> str:
        shown = "?" if self.output is UNKNOWN else repr(self.output)
        argument = f"({self.value!r})" if self.kind == "write" else ""
        return f"{self.process} {self.kind}{argument} {self.key} -> {shown} [{self.call}, {self.ret}]"


def step(state, op: Operation):
    """The register's next state if `op` may take effect in `state`, else a marker of refusal."""
    if op.kind == "write":
        return True, op.value
    if op.kind == "read":
        return op.output is UNKNOWN or op.output == state, state
    if op.kind == "delete":
        if op.output is UNKNOWN:
            return True, None
        return op.output == (state is not None), None
    raise ValueError(f"unknown operation {op.kind}")


@dataclasses.dataclass
class Verdict:
    linearizable: bool
    key: str | None = None
    # The longest prefix of operations (by call) that could be linearized, for the report.
    explanation: str = ""


def check_register(ops: list[Operation], initial=None) -> tuple[bool, int]:
    """Whether `ops` on one register are linearizable from `initial`; and the largest number
    of operations the search linearized (for a report when they are not)."""
    # The events in time order. At equal times a return goes after a call, so operations that
    # only touch count as concurrent (the conservative reading of a clock's resolution). An
    # operation of unknown outcome returns after everything: placed last, a write or delete
    # is the same as one that never took effect.
    events = sorted([(op.call, 0, i) for i, op in enumerate(ops)] + [(op.ret, 1, i) for i, op in enumerate(ops)])
    # A doubly linked list over the events, node k + 1 for events[k], node 0 the head.
    n = len(events)
    nxt = list(range(1, n + 2))
    prev = list(range(-1, n + 1))
    is_call = [False] + [e[1] == 0 for e in events]
    opid = [None] + [e[2] for e in events]
    return_node = {opid[k]: k for k in range(1, n + 1) if not is_call[k]}

    def lift(k):
        nxt[prev[k]] = nxt[k]
        prev[nxt[k]] = prev[k]

    def unlift(k):
        nxt[prev[k]] = k
        prev[nxt[k]] = k

    seen = set()
    stack = []  # (call node, state before it, linearized before it)
    linearized = 0  # bit i: operation i placed
    state = initial
    best = 0
    k = nxt[0]
    while nxt[0] <= n:
        if is_call[k]:
            op = opid[k]
            ok, after = step(state, ops[op])
            placed = linearized | (1 << op)
            if ok and (placed, after) not in seen:
                seen.add((placed, after))
                stack.append((k, state, linearized))
                state, linearized = after, placed
                lift(k)
                lift(return_node[op])
                best = max(best, len(stack))
                k = nxt[0]
            else:
                k = nxt[k]
        else:
            # An operation returned before any order could place it: undo the last choice.
            if not stack:
                return False, best
            call, state, linearized = stack.pop()
            unlift(return_node[opid[call]])
            unlift(call)
            k = nxt[call]
    return True, len(ops)


def check(history: list[Operation]) -> Verdict:
    """Checks each name's operations on their own."""
    by_key = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    for key, ops in sorted(by_key.items()):
        ok, placed = check_register(ops)
        if not ok:
            ops = sorted(ops, key=lambda o: o.call)
            shown = "\n".join(str(op) for op in ops[max(0, placed - 10):placed + 10])
            return Verdict(False, key, f"{key}: no linearization past {placed} of {len(ops)} operations; "
                                       f"operations around there:\n{shown}")
    return Verdict(True)
