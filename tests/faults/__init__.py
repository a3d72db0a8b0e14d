"""Planted faults: proof that the suite can fail (issue 12).

tests/faults/table.py lists small, exact text replacements in engine's code (each breaks one thing a test claims
to guard) and the tests that must fail with it; `python -m tests.faults` plants each in a temporary copy of the
tree and runs those tests there. tests/unit/test_faults_table.py checks, fast, that every replacement still
applies to the current code. See tests/faults/README.md.
"""
