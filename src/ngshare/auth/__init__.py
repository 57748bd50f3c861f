"""Who is calling: authenticators chosen by configuration."""

from ngshare.auth.base import Authenticator, authenticate, build_authenticator
from ngshare.auth.user import User

__all__ = ["Authenticator", "User", "authenticate", "build_authenticator"]
