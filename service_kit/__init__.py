"""What the resource API (``python -m resource_api``) and the client app (``python -m client_app``)
share, in one implementation each: JSON logging without credentials
(:mod:`service_kit.json_logging`), the command line that loads settings and serves the app
(:mod:`service_kit.cli`) and the machinery that turns environment variables into settings
(:mod:`service_kit.env`). Each program keeps its own variables, defaults and messages.
"""
