"""Who is calling: authenticators chosen by configuration."""

from ngshare.auth.base import Authenticator, User, build_authenticator

__all__ = ["Authenticator", "User", "build_authenticator"]
