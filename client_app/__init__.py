"""A Litestar web app that signs users in with the logto SDK and calls the resource API.

Tokens stay on the server (a session store keyed by an opaque cookie); the SDK's client is built
per request around the session, with the pitfalls of ``shared/docs/logto-tokens.md`` §6
neutralised. Start it with ``python -m client_app --host 127.0.0.1 --port 8000``; see
``docs/client-app.md``.
"""
