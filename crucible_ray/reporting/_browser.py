"""Headless Chromium for the report: render a page from disk, dump its DOM, take a screenshot.

Chromium runs with networking features that phone home switched off and a throw-away profile;
``--log-net-log`` records every request it made, so a caller can check that none left the machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from crucible_ray.errors import ConfigError

_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # containers and CI run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-client-side-phishing-detection",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
    # Whatever Chromium itself still tries (account and time services) goes to a closed local port:
    # nothing leaves the machine, the page's own requests included.
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--enable-logging=stderr",
    "--v=0",
]


@dataclass(frozen=True)
class PageRun:
    """What Chromium produced for one page."""

    dom: str
    console: list[str]  # console messages and uncaught errors of the page
    requests: list[str]  # URLs the page itself asked for (not Chromium's own background services)


def find_chromium() -> str:
    """Path of the Chromium binary (Debian's `chromium`, installed by `make setup`)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise ConfigError("Chromium is not installed; `apt-get install chromium` (make setup does it as root)")


def open_page(
    page: str | Path,
    *,
    screenshot: str | Path | None = None,
    width: int = 1280,
    height: int = 2400,
    budget_ms: int = 15000,
) -> PageRun:
    """Load ``page`` from disk in headless Chromium; return its final DOM, console lines and requests."""
    url = Path(page).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="crucible-chromium-") as tmp:
        net = Path(tmp) / "net.json"
        base = [
            find_chromium(),
            *_FLAGS,
            f"--user-data-dir={tmp}/profile",
            f"--log-net-log={net}",
            f"--virtual-time-budget={budget_ms}",
            f"--window-size={width},{height}",
        ]
        done = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180)
        if screenshot is not None:
            subprocess.run(
                [*base, f"--screenshot={Path(screenshot).resolve()}", url],
                capture_output=True,
                text=True,
                timeout=180,
                check=True,
            )
        requests = _requests(net)
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return PageRun(done.stdout, console, requests)


def _requests(net_log: Path) -> list[str]:
    """URLs of the requests the page started (NetLog ``URL_REQUEST_START_JOB`` events whose network
    isolation key is the page's ``file://`` site), file: and data: URLs left out. Chromium's own
    requests carry no page origin and are not counted (the proxy above keeps them local anyway)."""
    if not net_log.is_file():
        return []
    text = net_log.read_text(errors="replace").rstrip().rstrip(",")
    if not text.endswith("}"):
        text += "]}"  # a log cut off when the browser exited is still readable
    try:
        events = json.loads(text).get("events", [])
    except json.JSONDecodeError:
        return []
    urls = set()
    for e in events:
        params = e.get("params") or {}
        url, key = params.get("url"), str(params.get("network_isolation_key", ""))
        if isinstance(url, str) and key.startswith("file://") and not url.startswith(("file:", "data:")):
            urls.add(url)
    return sorted(urls)
