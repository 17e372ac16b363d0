"""--watch and --serve: the report kept current while a sweep runs.

    python -m experiments.report SWEEP --watch          # tables and index.html kept current; Ctrl-C stops
    python -m experiments.report SWEEP --serve 8000     # the same, served on http://127.0.0.1:8000/ only

It looks at the run files every few seconds and, when one changed, rewrites the tables and the page (not the
figures) and live.js beside the page with the page's version; the open page loads live.js as often and reloads
when the version differs. It reads the run folders through the report's readers, which take a half-written last
line as the end of the file, and writes only into the report's folder. Ctrl-C (or SIGTERM) stops it and writes
the whole report.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from experiments.report.build import NoRunsError, one_line, output_folder, write_report
from experiments.report.dashboard import LIVE_SCRIPT, PAGE, Live, counts_line, running_folders, write_waiting_page
from trainer.records import atomic_write_bytes

WATCHED = {"summary.json", "metrics.jsonl", "steps.csv", "overrides.yaml", "multirun.yaml"}


def run_files(folders: Sequence[Path], out: Path) -> tuple:
    """(path, mtime, size) of every file under the folders that the report reads, the report's folder aside:
    what changes when a job starts, finishes an epoch or ends."""
    skip = Path(out).resolve()
    found = []
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if (Path(root) / d).resolve() != skip and d not in ("wandb", "tensorboard")]
            for name in WATCHED.intersection(files):
                path = os.path.join(root, name)
                try:
                    st = os.stat(path)
                except OSError:  # removed between the listing and the look
                    continue
                found.append((path, st.st_mtime_ns, st.st_size))
    return tuple(sorted(found))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 -- the base class's name
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")  # live.js and the page are new at every look
        super().end_headers()


def serve(folder: Path, port: int) -> ThreadingHTTPServer:
    """Serve `folder` on http://127.0.0.1:PORT/ (loopback only) from a background thread; an OSError in one
    line when the port cannot be had."""
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), partial(_QuietHandler, directory=str(folder)))
    except OSError as e:
        reason = (e.strerror or type(e).__name__).lower()
        raise OSError(f"cannot serve on 127.0.0.1:{port}: {reason}; choose another --serve PORT") from None
    threading.Thread(target=server.serve_forever, name="report-server", daemon=True).start()
    return server


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def watch(
    folders: Sequence[str | Path],
    out: str | Path | None,
    options: dict,
    interval: float = 2.0,
    port: int | None = None,
    stop: threading.Event | None = None,
    say: Callable[[str], None] = _say,
) -> int:
    """Keep the tables and the page in `out` (default: <first folder>/report) current until Ctrl-C, SIGTERM or
    `stop`, then write the whole report; `options` are write_report's. Returns the exit code: 2 after a one-line
    error (a folder that cannot be written, a port in use, a bad argument)."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return _watch([Path(f) for f in folders], out, options, interval, port, stop or threading.Event(), say)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill ends it as Ctrl-C does
    try:
        return _watch([Path(f) for f in folders], out, options, interval, port, stop or threading.Event(), say)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _watch(folders: list[Path], out, options: dict, interval: float, port, stop: threading.Event, say) -> int:
    if _wait_for(folders, interval, stop, say):
        return 0
    out = Path(out) if out else folders[0] / "report"
    server = None
    try:
        try:
            output_folder(out)
            if port is not None:
                server = serve(out, port)
        except (ValueError, OSError) as e:
            say(f"report: error: {one_line(e)}")
            return 2
        if server is not None:
            say(f"report: serving http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)")
        say(f"report: watching {', '.join(map(str, folders))}; the page is {out / PAGE}")
        seen = None
        while not stop.is_set():
            files = run_files(folders, out)
            if files != seen:
                live = Live(hashlib.sha1(repr(files).encode()).hexdigest()[:16], interval, time.strftime("%H:%M:%S"))
                if not _refresh(folders, out, options, live, say) and seen is None:
                    return 2  # the arguments themselves: nothing will change that
                atomic_write_bytes(out / LIVE_SCRIPT, f"dashboardVersion({json.dumps(live.version)});\n".encode())
                seen = files
            stop.wait(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    return _final(folders, out, options, say)


def _wait_for(folders: list[Path], interval: float, stop: threading.Event, say) -> bool:
    """Wait until every folder exists; True when stopped (or Ctrl-C) first."""
    try:
        if missing := [f for f in folders if not f.is_dir()]:
            say(f"report: waiting for {', '.join(map(str, missing))} to appear (Ctrl-C to stop)")
        while [f for f in folders if not f.is_dir()]:
            if stop.wait(interval):
                return True
    except KeyboardInterrupt:
        return True
    return False


def _refresh(folders: list[Path], out: Path, options: dict, live: Live, say) -> bool:
    """The tables and the page of the runs as they stand (a waiting page before the first run); False where the
    report could not be written (the line says why)."""
    try:
        report = write_report(folders, out, live=live, **options)
        running = running_folders([r.path for r in report.runs])
        say(f"report: {live.updated} {counts_line(report.runs, running)}")
    except NoRunsError:
        write_waiting_page(folders, out, live)
    except (ValueError, OSError) as e:
        say(f"report: error: {one_line(e)}")
        return False
    return True


def _final(folders: list[Path], out: Path, options: dict, say: Callable[[str], None]) -> int:
    """The whole report, figures included; live.js then tells an open page to load it."""
    try:
        report = write_report(folders, out, **options)
    except NoRunsError:
        say("report: stopped; no training run to report")
        return 0
    except (ValueError, OSError) as e:
        say(f"report: error: {one_line(e)}")
        return 2
    except KeyboardInterrupt:
        say("report: stopped before the whole report was written")
        return 130
    atomic_write_bytes(out / LIVE_SCRIPT, f"dashboardVersion({json.dumps('final ' + time.ctime())});\n".encode())
    say(f"report: stopped; wrote {', '.join(report.files)} to {out}")
    return 0
