"""Connecting to Ray: a local instance by default, a cluster with ``address`` or ``RAY_ADDRESS``.

Quiet by default (the CLI owns the terminal), token authentication on. A local instance listens on
loopback only (its node address is 127.0.0.1, so its gRPC servers, dashboard, agents and metrics
endpoints bind 127.0.0.1) and its token file, ``~/.ray/auth_token``, is readable by its owner only.
A Ray instance that is already initialised (a driver script, a test session) is reused and left running.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.errors import ConfigError

log = get_logger(__name__)

LOOPBACK = "127.0.0.1"
_warned: set[str] = set()  # warnings already given in this process


def quiet_ray_environment() -> None:
    """Environment settings that must be in place before Ray is imported (only where the user set none).

    Ray reads ``RAY_AUTH_MODE`` when it is imported, so it is only set here if Ray is not imported yet;
    a driver script that imports Ray first keeps whatever it chose.
    """
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_AUTH_MODE", "token")  # explicit: keeps auth on and silences the notice
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")


def _warn_once(key: str, message: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None, **init_kwargs: Any) -> Iterator[None]:
    """Use the running Ray instance, or start/connect one for the duration of the block.

    Args:
        address: ``"auto"``, ``"ray://host:10001"``, ``"host:6379"``; default: ``RAY_ADDRESS`` if set,
            else a new local instance (``"local"`` says so explicitly; never another Ray instance found
            on this machine).
        num_cpus: CPUs of a new local instance (default: all).
    """
    quiet_ray_environment()
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address == "local":
        address = None
    token_auth = os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled"
    if not token_auth:
        _warn_once(
            "auth-disabled",
            "RAY_AUTH_MODE=disabled is set in the environment: token authentication is off, so %s; unset "
            "RAY_AUTH_MODE to turn it back on",
            f"this client sends no token to the Ray cluster at {address!r} (a cluster that accepts that is not "
            "protected by a token: anyone who reaches its ports can run code on it)"
            if address
            else "the local Ray instance is not protected by a token: any process on this machine can run code on it",
        )
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING, **init_kwargs}
    on_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if address is None:
            if token_auth:
                _private_token_file(create=True)  # before Ray would create it readable by everyone
            kwargs.setdefault("num_cpus", num_cpus)
            kwargs.setdefault("dashboard_host", LOOPBACK)
            kwargs.setdefault("_node_ip_address", LOOPBACK)
            with _loopback_node_address():
                ray.init(address="local", **kwargs)
            _check_loopback()
        else:
            if token_auth:
                _private_token_file(create=False)
            # A driver of an instance on loopback (one started as above) takes 127.0.0.1 as well: Ray would
            # otherwise rewrite the address to the machine's network address, where nothing listens.
            with _loopback_node_address() if _is_loopback(address) else nullcontext():
                ray.init(address=address, **kwargs)
    except (ConnectionError, ray.exceptions.AuthenticationError) as e:
        raise ConfigError(_connect_message(address, e)) from None
    finally:
        _restore_sigterm_handler(on_sigterm)
    if address is not None and token_auth and _cluster_checks_tokens(address) is False:
        held = bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"))
        held = held or _default_token_path().exists()
        log.warning(
            "the Ray cluster at %r does not check authentication tokens (it answered a request sent without "
            "one)%s: anyone who can reach its ports can run code on it; start its nodes with RAY_AUTH_MODE=token",
            address,
            ", so the token this client holds protects nothing there" if held else "",
        )
    log.info("Ray %s: %s", "cluster" if address else "local instance", _describe(ray.cluster_resources()))
    try:
        yield
    finally:
        ray.shutdown()


def _restore_sigterm_handler(handler: Any) -> None:
    """Put back the SIGTERM handler the caller had before Ray started.

    ``ray.init`` replaces it with one that exits at once (seen: exit code 1, a native stack dump, Tune's
    state not saved); the CLI's turns SIGTERM into a SIGINT, which Tune takes as a request to stop
    cleanly and Python as a KeyboardInterrupt. Only a handler the caller set (a Python callable), and
    only from the main thread.
    """
    if callable(handler) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


@contextmanager
def _loopback_node_address() -> Iterator[None]:
    """Let a new local instance take 127.0.0.1 as its node address.

    ``ray.init`` replaces a loopback ``_node_ip_address`` by the machine's network address unless Ray
    runs in its single-machine mode (the default on macOS and Windows), where the node address is
    127.0.0.1. That mode is switched on for the ``ray.init`` call only: a driver that later connects
    to a cluster must announce its network address.
    """
    from ray._private import ray_constants

    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):  # another Ray: _check_loopback() tells
        yield
        return
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _is_loopback(address: str) -> bool:
    """Whether ``host:port`` names this machine's loopback interface (``ray://`` and ``auto``: no)."""
    if "://" in address or ":" not in address:
        return False
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_loopback() -> None:
    import ray

    try:
        ip = ray._private.worker.global_worker.node.node_ip_address
    except AttributeError:
        return
    if ip != LOOPBACK:
        log.warning(
            "the local Ray instance took %s as its node address, not %s: some of its ports listen beyond "
            "this machine's loopback interface (token-protected)",
            ip,
            LOOPBACK,
        )


def _default_token_path() -> Path:
    return Path.home() / ".ray" / "auth_token"


def _private_token_file(*, create: bool) -> Path | None:
    """Make sure the token file Ray reads is readable by its owner only; with ``create``, write one.

    The file is ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token`` (none when ``RAY_AUTH_TOKEN`` holds the
    token). ``~/.ray/auth_token`` found readable or writable by others is set to 600, with a warning; a
    file named by ``RAY_AUTH_TOKEN_PATH`` is only warned about (it may be a mounted secret). With
    ``create`` and no token anywhere, a new token is written to ``~/.ray/auth_token`` with mode 600
    (Ray would create it with the umask's mode, usually 644). Returns the file, if there is one.
    """
    if os.environ.get("RAY_AUTH_TOKEN"):
        return None
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    path = Path(named).expanduser() if named else _default_token_path()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        if not create or named:
            return None
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))  # as Ray's own generator: 256 random bits, hex
        log.info("wrote a new Ray authentication token to %s (mode 600)", path)
        return path
    if mode & 0o077:
        if named:
            _warn_once(
                f"token-mode:{path}",
                "%s (RAY_AUTH_TOKEN_PATH) holds a Ray authentication token and has mode %03o: others on this "
                "machine can read it; chmod 600 it",
                path,
                mode,
            )
            return path
        try:
            os.chmod(path, 0o600)
        except OSError as e:
            _warn_once(
                f"token-mode:{path}",
                "%s has mode %03o (others can read the token) and could not be changed: %s",
                path,
                mode,
                e.strerror,
            )
            return path
        _warn_once(
            f"token-mode:{path}",
            "%s had mode %03o (others on this machine could read the token); set to 600",
            path,
            mode,
        )
    return path


def _cluster_checks_tokens(address: str) -> bool | None:
    """Whether the connected cluster refuses a request without a token: its GCS is asked for the
    cluster id with no token (True: refused; False: answered; None: not known, e.g. Ray Client or TLS)."""
    if address.startswith("ray://"):
        return None
    import grpc
    import ray

    try:
        gcs = ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - an older or different Ray: nothing to tell
        return None
    channel = grpc.insecure_channel(gcs)
    try:
        call = channel.unary_unary(
            "/ray.rpc.NodeInfoGcsService/GetClusterId",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        call(b"", timeout=10)
    except grpc.RpcError as e:
        return True if e.code() == grpc.StatusCode.UNAUTHENTICATED else None
    finally:
        channel.close()
    return False


_TOKEN_HINT = "supply the cluster's token as RAY_AUTH_TOKEN, a file named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token"


def _connect_message(address: str | None, error: BaseException) -> str:
    """One line for a failed ``ray.init``: a missing token (this client's requirement: it has token
    authentication on) or a token the cluster rejected says so and how to supply it."""
    import ray

    chain: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and e not in chain:  # ray.init wraps the authentication error it met
        chain.append(e)
        e = e.__cause__ or e.__context__
    auth = any(isinstance(x, ray.exceptions.AuthenticationError) or "InvalidAuthToken" in str(x) for x in chain)
    where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
    if auth:
        missing = any("no authentication token was found" in str(x) for x in chain)
        has_token = bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"))
        has_token = has_token or _default_token_path().exists()
        if missing or not has_token:
            return (
                f"this client requires an authentication token to connect to {where} (token authentication is "
                f"on here, RAY_AUTH_MODE=token) and found none, so the cluster was not asked: {_TOKEN_HINT} "
                "(RAY_AUTH_MODE=disabled connects without a token, to a cluster that checks none)"
            )
        return f"{where} rejected the authentication token: {_TOKEN_HINT}"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"cannot connect to {where}: {first}"


def _describe(resources: dict[str, float]) -> str:
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    return f"{cpus:g} CPUs, {gpus:g} GPUs"


def cluster_cpus_gpus() -> tuple[float, float]:
    """CPUs and GPUs of the connected cluster."""
    import ray

    r = ray.cluster_resources()
    return float(r.get("CPU", 0.0)), float(r.get("GPU", 0.0))


def largest_node_cpus() -> float | None:
    """The CPUs of the cluster's largest live node (one actor cannot span nodes); None if unknown."""
    import ray

    cpus = [float(n.get("Resources", {}).get("CPU", 0.0)) for n in ray.nodes() if n.get("Alive")]
    return max(cpus) if cpus else None
