"""ngshare: the nbgrader exchange as a JupyterHub service."""

__version__ = "0.1.0.dev0"
