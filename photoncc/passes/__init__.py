"""Compiler passes: one module per pass, each a function ``(graph, context) -> graph`` named
verb_object. The order they run in is ``compiler.PIPELINE``; ``context.Context`` holds the profile,
the calibration data and the state one pass hands to a later one.
"""
