"""A Litestar web app that signs users in with the logto SDK and calls the resource API."""
