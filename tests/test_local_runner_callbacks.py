"""Issue 11 item 8: the real local runner allows private callback targets, yet refuses a
callback to its own embedded AWS endpoint (`/moto-api/reset` would wipe every tenant's
state) and to its own API, in any loopback spelling."""

from __future__ import annotations

import re
import time

import requests

from localrunner.live import live_runner


def test_the_runner_refuses_callbacks_to_its_own_endpoints() -> None:
    with live_runner() as runner:
        deadline = time.monotonic() + 30  # the banner follows the first healthy answer
        while not (match := re.search(r"AWS endpoint\s+(http://\S+)", runner.log())):
            assert time.monotonic() < deadline, runner.log()
            time.sleep(0.1)
        aws = match.group(1).rstrip("/")
        aws_port = aws.rsplit(":", 1)[1]
        api_port = runner.url.rsplit(":", 1)[1]
        headers = {"Authorization": f"Bearer {runner.api_key}"}

        def submit(url: str) -> requests.Response:
            return requests.post(f"{runner.url}/v1/jobs", headers=headers, timeout=10,
                                 json={"service": "echo", "input": {}, "callbackUrl": url})

        for url in (f"{aws}/moto-api/reset", f"http://localhost:{aws_port}/moto-api/reset",
                    f"http://[::ffff:127.0.0.1]:{aws_port}/moto-api/reset",
                    f"http://0.0.0.0:{aws_port}/", f"http://127.0.0.1:{api_port}/v1/jobs",
                    f"http://localhost:{api_port}/v1/jobs"):
            resp = submit(url)
            assert resp.status_code == 422, (url, resp.text)
            assert resp.json()["error"]["details"][0]["loc"] == ["callbackUrl"]
        assert submit("http://127.0.0.1:9/hook").status_code == 202  # private targets still fine
