"""Python client of the v2 API, used by the nbgrader exchange plugin, the CLI and the benchmark."""

from ngshare.client.errors import ClientError
from ngshare.client.http import FeedbackFiles, NgshareClient
from ngshare.client.trees import LocalFile, Progress, scan_tree

__all__ = ["ClientError", "FeedbackFiles", "LocalFile", "NgshareClient", "Progress", "scan_tree"]
