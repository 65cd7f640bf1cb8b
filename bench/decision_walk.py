"""The walk of one live decision through the code: which files, reached from where.

    python bench/decision_walk.py [--venue concert_hall] [--policy gpt] [--avatars 300]
                                  [--warm-steps 60] [--calls]

Runs a small scenario, then traces (``sys.setprofile``) the next call of the crowd's
``ask_policy``: every call from one of the project's files into another. The files form
the decision's *walk*: each file is listed under the file that first calls it, in the
order met. A file reached again from a different file (a cycle, or a second caller) is a
*return* (counted once per pair of files): a reader who has left it must go back to it.
Calls within a file, and more calls from a file into one it already called, are not
returns (the reader has that file open).
The architecture issue's measure of how far a newcomer must read. ``--calls`` also prints
every cross-file call, in order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin import Scenario, VenueModel  # noqa: E402


def trace(
    venue: str, policy: str, avatars: int = 300, warm_steps: int = 60
) -> list[tuple[str, str, str]]:
    """(caller file, callee file, callee function) of every cross-file call, in order,
    during one ``ask_policy`` after ``warm_steps`` steps; the first entry's caller is
    ``""``."""
    scenario = Scenario(venue=venue, policy=policy, avatars=avatars, hours=1.0, seed=1)
    model = VenueModel(scenario)
    for _ in range(warm_steps):
        model.step()
    root = str(ROOT) + "/"
    calls: list[tuple[str, str, str]] = []

    def ours(frame: Any) -> str | None:
        name = frame.f_code.co_filename
        return name[len(root) :] if name.startswith(root) and "/.venv/" not in name else None

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event != "call" or (here := ours(frame)) is None:
            return
        back = frame.f_back
        while back is not None and ours(back) is None:
            back = back.f_back
        caller = ours(back) if back is not None and calls else ""
        if caller != here:
            calls.append((caller or "", here, frame.f_code.co_name))

    ask = model.crowd.ask_policy

    def traced(*args: Any, **kwargs: Any) -> Any:
        sys.setprofile(hook)
        try:
            return ask(*args, **kwargs)
        finally:
            sys.setprofile(None)

    model.crowd.ask_policy = traced
    while not calls and model.running:
        model.step()
    return calls


def walk(calls: list[tuple[str, str, str]]) -> tuple[list[tuple[int, str]], list[str]]:
    """The files as a tree, (depth, file) in the order first met, and the returns: each
    pair (caller, callee) where the callee was first reached from another file (its
    first function so called named)."""
    parent: dict[str, str] = {}
    depth: dict[str, int] = {}
    order: list[tuple[int, str]] = []
    returns: dict[tuple[str, str], str] = {}
    for caller, callee, function in calls:
        if callee not in parent:
            parent[callee] = caller
            depth[callee] = depth.get(caller, -1) + 1
            order.append((depth[callee], callee))
        elif parent[callee] != caller:
            returns.setdefault((caller, callee), function)
    return order, [f"{a} -> {b} ({f})" for (a, b), f in returns.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venue", default="concert_hall")
    parser.add_argument("--policy", default="gpt")
    parser.add_argument("--avatars", type=int, default=300)
    parser.add_argument("--warm-steps", type=int, default=60)
    parser.add_argument("--calls", action="store_true", help="print every cross-file call")
    args = parser.parse_args(argv)
    calls = trace(args.venue, args.policy, args.avatars, args.warm_steps)
    order, returns = walk(calls)
    print(f"{len(order)} files, {len(returns)} returns to a file already reached from another")
    for level, name in order:
        print("  " * level + name)
    for r in returns:
        print("return:", r)
    if args.calls:
        for caller, callee, function in calls:
            print(f"{caller or '(start)'} -> {callee}:{function}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
