"""The exchange plugin's configuration entry points, without nbgrader installed.

nbgrader is an optional dependency (the `nbgrader` extra): importing ngshare
and `ngshare.exchange` and calling `configure` must work without it, and the
classes are only loaded when nbgrader asks for them. The dev virtualenv has
no nbgrader, so these run there; the classes themselves are exercised by the
slow tests in the nbgrader virtualenv.
"""

from __future__ import annotations

import subprocess
import sys

from traitlets.config import Config

from ngshare.exchange import IMPORT_STRINGS, configure


def test_configure_sets_every_exchange_factory_trait():
    c = configure(Config(), url="http://127.0.0.1:8000/services/ngshare", service_name="share")
    assert dict(c.ExchangeFactory) == IMPORT_STRINGS
    assert set(IMPORT_STRINGS) == {
        "exchange",
        "fetch_assignment",
        "fetch_feedback",
        "release_assignment",
        "release_feedback",
        "list",
        "submit",
        "collect",
    }
    assert c.Exchange.ngshare_url == "http://127.0.0.1:8000/services/ngshare"
    assert c.Exchange.service_name == "share"
    assert "ngshare_url" not in configure(Config()).Exchange


def test_importing_ngshare_needs_no_nbgrader():
    script = (
        "import sys, ngshare, ngshare.client, ngshare.exchange\n"
        "from traitlets.config import Config\n"
        "ngshare.exchange.configure(Config())\n"
        "assert 'nbgrader' not in sys.modules, 'nbgrader was imported'\n"
        "try:\n"
        "    import nbgrader  # noqa: F401\n"
        "except ImportError:\n"
        "    try:\n"
        "        ngshare.exchange.ExchangeList\n"
        "    except ImportError:\n"
        "        print('classes need nbgrader')\n"
        "else:\n"
        "    print('nbgrader present')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("classes need nbgrader", "nbgrader present")
