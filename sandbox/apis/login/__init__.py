"""The Login API: OpenID Connect (authorization code with PKCE) and CIBA, for unmodified OIDC clients."""
