"""The walk of one live decision through the code: which files, in which order.

    python bench/decision_walk.py [--venue concert_hall] [--policy gpt]

Runs a small scenario, then traces (``sys.setprofile``) the next call of the crowd's
``ask_policy``: every function call in the project's own files, consecutive calls in one
file counted once. Prints the number of distinct files, the returns to a file already
visited, and the walk. The architecture issue's measure of how far a newcomer must read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin import Scenario, VenueModel  # noqa: E402


def walk(venue: str, policy: str, warm_steps: int = 60) -> list[str]:
    """The files of the project called, in order, during one ``ask_policy``."""
    model = VenueModel(Scenario(venue=venue, policy=policy, avatars=300, hours=1.0, seed=1))
    for _ in range(warm_steps):
        model.step()
    root, files = str(ROOT) + "/", []

    def hook(frame: Any, event: str, arg: Any) -> None:
        name = frame.f_code.co_filename
        if event == "call" and name.startswith(root) and "/.venv/" not in name:
            here = name[len(root) :]
            if not files or files[-1] != here:
                files.append(here)

    ask = model.crowd.ask_policy

    def traced(*args: Any, **kwargs: Any) -> Any:
        sys.setprofile(hook)
        try:
            return ask(*args, **kwargs)
        finally:
            sys.setprofile(None)

    model.crowd.ask_policy = traced
    while not files and model.running:
        model.step()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venue", default="concert_hall")
    parser.add_argument("--policy", default="gpt")
    args = parser.parse_args(argv)
    files = walk(args.venue, args.policy)
    distinct = list(dict.fromkeys(files))
    print(f"{len(distinct)} files, {len(files) - len(distinct)} returns to a file already visited")
    print(" -> ".join(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
