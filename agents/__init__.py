"""Avatars and the policies that make them decide.

``Avatar`` is the Mesa agent; ``Policy`` is the batched decision protocol; ``ScriptedPolicy``
(needs-based, history-dependent) and ``RandomPolicy`` are the hand-written policies.
"""

from agents.avatar import Avatar
from agents.needs import Needs
from agents.policy import Decision, Layout, Observation, Policy
from agents.scripted import RandomPolicy, ScriptedPolicy

__all__ = [
    "Avatar",
    "Decision",
    "Layout",
    "Needs",
    "Observation",
    "Policy",
    "RandomPolicy",
    "ScriptedPolicy",
]
