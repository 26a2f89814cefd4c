"""Take the README's screenshot of the demo page: ``python scripts/demo_screenshot.py [docs/demo.png]``.

Starts ``squall`` (the demo app) over TLS with a throwaway test CA, opens it in headless Chromium
(``tests/e2e/cdp.py``), waits until the page's websocket echo and first server-sent event have
arrived, and saves a PNG.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.h2util import Certs
from tests.e2e.harness import Server
from tests.e2e.test_browser import save_demo_screenshot


def main() -> int:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/demo.png")
    with tempfile.TemporaryDirectory() as folder:
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        certs = Certs(ca=cert, cert=cert, key=key, encrypted_key=key, client_pem=key, authority=ca)
        server = Server(certs.args(), app=None).start()
        try:
            save_demo_screenshot(target, server, certs)
        finally:
            server.stop()
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
