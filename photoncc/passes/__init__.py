"""Compiler passes: one function ``Graph -> Graph`` per module, named verb_object.

The order they run in is the list in ``photoncc/pipeline.py``.
"""
