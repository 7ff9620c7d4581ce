"""The HTTP layer: one thin module per capability, each a Flask blueprint."""
