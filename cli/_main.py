"""Entry point: the click group, logging to the terminal, and one place that turns errors into exit codes.

Exit codes: 0 success, 1 a guardrail blocked, 2 bad input or usage (one line, no traceback unless
``--debug``), 3 an internal error (a bug: rerun with ``--debug`` and report the traceback), 130 interrupted.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence

import click

from crucible_ray import __version__
from crucible_ray.errors import CrucibleError

PROG = "crucible-ray"
INTERRUPTED = "interrupted; finished work is kept: rerun the same command to continue (a sweep: --resume)"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name=PROG)
@click.option("--debug", is_flag=True, help="Show full tracebacks (also accepted anywhere on the line).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE first (repeatable): a module that registers your encoder kinds "
    "(crucible_ray.register_encoder). Also read from CRUCIBLE_RAY_PLUGINS (comma-separated).",
)
def app(debug: bool, quiet: bool, plugins: tuple[str, ...]) -> None:
    """Mine, train and sweep contrastive models on Ray; watch retention vs generalization.

    Exit codes: 0 success, 1 a guardrail blocked, 2 bad input or usage, 3 internal error.
    """
    _configure_logging(logging.WARNING if quiet else logging.INFO)
    _import_plugins([*filter(None, os.environ.get("CRUCIBLE_RAY_PLUGINS", "").split(",")), *plugins])


def _import_plugins(modules: Sequence[str]) -> None:
    import importlib

    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a plugin module beside the user's data, as `python -m` would find it
    for name in modules:
        try:
            importlib.import_module(name.strip())
        except CrucibleError as e:  # e.g. it registers a kind under a name already taken
            raise click.UsageError(f"plugin {name.strip()}: {e}") from None
        except Exception as e:  # noqa: BLE001 - ImportError, SyntaxError, or any error while it runs
            raise click.UsageError(f"plugin {name.strip()}: cannot import it ({type(e).__name__}: {e})") from None


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not when the CLI first ran
    (an embedding program or a test harness may swap and close the stream it had then)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _configure_logging(level: int) -> None:
    logger = logging.getLogger("crucible_ray")
    if not any(getattr(h, "_crucible_cli", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        handler._crucible_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)


def _register() -> None:
    from crucible_ray.cli._data import data
    from crucible_ray.cli._demo import demo
    from crucible_ray.cli._eval import eval_command
    from crucible_ray.cli._export import export_command
    from crucible_ray.cli._mine import expand_command, mine_command
    from crucible_ray.cli._sweep import guardrail_group, pareto_command, report_command, sweep_group
    from crucible_ray.cli._train import train_command

    app.add_command(data)
    app.add_command(eval_command)
    app.add_command(mine_command)
    app.add_command(expand_command)
    app.add_command(train_command)
    app.add_command(sweep_group)
    app.add_command(pareto_command)
    app.add_command(guardrail_group)
    app.add_command(report_command)
    app.add_command(export_command)
    app.add_command(demo)


_register()


def _stop_on_sigterm() -> None:
    """SIGTERM (a scheduler, ``kill``, a container stop) stops a command as Ctrl-C does: it becomes a
    SIGINT, so whoever handles that (Ray Tune saves its experiment state; Python raises
    KeyboardInterrupt) unwinds cleanly. Finished work (mining parts, training and Tune checkpoints) is
    kept, nothing partial is left under a final name, and the same command continues it. Only from the
    main thread, and only where nobody set a handler of their own."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM stops at once
        os.kill(os.getpid(), signal.SIGINT)

    signal.signal(signal.SIGTERM, interrupt)


def _fail(message: str, code: int) -> int:
    click.echo(f"{PROG}: error: {message}", err=True)
    return code


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return the exit code (no ``sys.exit``; for embedding and tests)."""
    from crucible_ray.distributed import quiet_ray_environment

    quiet_ray_environment()  # before anything imports Ray
    _stop_on_sigterm()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CRUCIBLE_RAY_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        result = app.main(args=args, prog_name=PROG, standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.Abort as e:  # click turns a KeyboardInterrupt (Ctrl-C, or SIGTERM: see above) into Abort
        if isinstance(e.__context__, KeyboardInterrupt) or isinstance(e.__cause__, KeyboardInterrupt):
            return _fail(INTERRUPTED, 130)
        return _fail("aborted", 130)
    except click.ClickException as e:
        if debug:
            traceback.print_exc()
        hint = f" (see '{e.ctx.command_path} --help')" if isinstance(e, click.UsageError) and e.ctx else ""
        return _fail(e.format_message() + hint, 2)
    except CrucibleError as e:
        if debug:
            traceback.print_exc()
        return _fail(str(e).splitlines()[0] if str(e) else type(e).__name__, e.exit_code)
    except KeyboardInterrupt:
        return _fail(INTERRUPTED, 130)
    except OSError as e:
        if debug:
            traceback.print_exc()
        if e.filename is None:  # not a file the system refused: a bug like any other
            return _fail(f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)", 3)
        # The file system refused a path (read-only, full, not a folder, no permission): the environment
        # or the path given, not a bug.
        return _fail(f"{e.filename}: {e.strerror or e}; check the path, its permissions and free space", 2)
    except Exception as e:  # a bug: say so in one line, the traceback with --debug
        if debug:
            traceback.print_exc()
        return _fail(f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)", 3)
    return int(result) if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
