"""``spravka serve``: the HTTP API, the chat widget and the admin console (uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from spravka.cli.base import app, console, state
from spravka.core.errors import ConfigError

DEMO_KEY_FILE = "demo.key"


def demo_key(sp) -> str:
    """The demo page's key (role user, group public): reused from ``$SPRAVKA_HOME/demo.key`` while
    it is valid, else created. It can read only public documents, like any anonymous visitor."""
    path = Path(sp.home) / DEMO_KEY_FILE
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        rec = sp.keys.verify(key)
        if rec is not None and str(rec.role) == "user" and rec.groups in ((), ("public",)):
            return key
    for k in sp.keys.list():
        if k.name == "demo":
            sp.keys.revoke(k.id)  # its secret is lost with the file
    key, _ = sp.keys.create("demo", "user", ["public"])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    return key


@app.command()
def serve(
    host: str | None = typer.Option(None, "--host", help="Address to bind (default server.host, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default server.port, 8000)."),
    demo: bool = typer.Option(False, "--demo", help="Give the demo page at / a key of role user, group public."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the API (/v1, OpenAPI at /docs), the widget demo (/) and the admin console (/admin)."""
    try:
        import uvicorn

        from spravka.api import create_app
    except ImportError as e:
        raise ConfigError(f"the server needs extra packages ({e.name})", hint="pip install 'spravka[server]'") from None
    sp = state.spravka()
    s = sp.settings.server
    host = host or s.host
    port = port or s.port
    key = demo_key(sp) if demo else None
    if not sp.store.list_collections():
        console.print("[yellow]no collections yet:[/] run 'spravka ingest PATH' or upload in /admin")
    base = f"http://{host}:{port}"
    if demo:
        console.print(f"[bold green]demo[/]: {base}/  (widget key: role user, group public)")
        if host not in ("127.0.0.1", "localhost", "::1"):
            console.print("[yellow]the demo key is shown on the page to anyone who can reach it[/]")
    console.print(f"API {base}/docs · admin {base}/admin (spravka keys create --name me --role admin)")
    application = create_app(sp, demo_key=key)
    uvicorn.run(application, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10,
                proxy_headers=False)
