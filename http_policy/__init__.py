"""HTTP policy: CORS, trusted proxies, origins and request validation, free of Flask."""
