"""The one-command demo: ``python -m demo`` starts the dev issuer, the resource API and the
client app on 127.0.0.1, wired to one another, and stops all three together.

:mod:`demo.launcher` does the starting and stopping (the end-to-end tests use it too);
:mod:`demo.seed` says what each demo user may do, from the issuer's seed.
"""
