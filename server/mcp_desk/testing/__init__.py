"""Test-only profiles: extra tools, resources and prompts that tests may enable through create_app.

Nothing here is reachable from the shipped server: no CLI flag or setting turns it on.
"""
