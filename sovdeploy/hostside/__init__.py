"""Programs that run on other hosts, not on the deployer.

Each module here is shipped to hosts (by ``ansible.builtin.script``, or in the ledger
bundle that the log hosts run with Debian's Python) and runs there as a program. They
import only the standard library, what Debian packages for the hosts, and the
ledger's core (:mod:`sovdeploy.ledger`), never the deployer's modules; a test holds
them to that.

Their rule for exiting: ``main()`` parses its arguments and returns the exit code;
only the ``if __name__ == "__main__":`` line ends the process. The programs in the
ledger bundle (the ledger service, the witness) may also raise :class:`Exit` with a
reason that their caller (systemd, a playbook) must read, and end through
:func:`run`. The ones shipped alone as a script (``sysfs``, ``probe``, ``export``,
``restore``) import nothing of sovdeploy's and end with ``sys.exit(main())``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class Exit(Exception):  # noqa: N818 - it is how a program says it stops, not an error class
    """A host-side program stops with this message on standard error and exit code 1."""


def run(main: Callable[[], int]) -> None:
    """Run ``main`` as the process: its return value, or an :class:`Exit`, is the status."""
    try:
        code = main()
    except Exit as exc:
        print(f"{sys.argv[0]}: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
