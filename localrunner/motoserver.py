"""`python -m localrunner.motoserver -H 127.0.0.1 -p PORT`: moto's server as the local runner
embeds it, in a process of its own (tests/compat_live.py): DynamoDB's writes atomic
(motolock.py) and the costs that grow with the load cut (motofast.py)."""

from __future__ import annotations

from moto.server import main

from . import motofast, motolock

if __name__ == "__main__":
    motolock.install()
    motofast.install()
    main()
