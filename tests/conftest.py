"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def own_ledger(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs in tests append their provenance to a ledger of the test session's, never to
    the user's (``twin.provenance``); subprocesses inherit it."""
    folder = tmp_path_factory.getbasetemp() / "ledger"
    monkeypatch.setenv("VENUETWIN_LEDGER", str(folder / "ledger.jsonl"))


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Small tensors gain nothing from threads, and lose a lot when the cores are busy;
    modules that run the GPT use it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives the dashboard in a real Chromium (needs /usr/bin/chromium)"
    )
