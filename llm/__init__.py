"""The avatar's brain: visit-log schema, features, the compact GPT, training and evaluation.

This is the base layer: it imports torch, numpy and pandas only (no Mesa, no twin, no agents).
"""
