"""The sandbox's Kubernetes API server: one aiohttp site on 127.0.0.1, HTTPS or plain HTTP.

`KubeSandbox` serves a `KubeStore` to real clients (kubectl, the `kubernetes` Python client), keeps
the request log and fault plan of `/_sandbox/`, persists the store when given a state directory, and
writes the kubeconfig clients use. `serve_in_thread` runs one on its own event loop for synchronous
callers such as tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from sandbox.kube.control import VERB_KEY, Control
from sandbox.kube.responses import KubeApi, error_response, verb_of
from sandbox.kube.urls import routes

if TYPE_CHECKING:
    from sandbox.kube.models import KubeStore
    from sandbox.tls import TlsBundle

logger = logging.getLogger(__name__)

CLUSTER_NAME = "aks-rubicon-koreacentral-01"
STATIC_TOKEN = "sandbox-static-token"  # any bearer token (or none) is accepted
STATE_FILE = "kube.json"
SAVE_INTERVAL = 1.0
MAX_BODY = 64 * 1024 * 1024  # CRD manifests are large; the real server accepts 3 MiB objects


class KubeSandbox:
    """The API server of the sandbox cluster."""

    def __init__(
        self,
        store: KubeStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: TlsBundle | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.host = host
        self.port = port
        self.tls = tls
        self.state_dir = state_dir
        self.control = Control()
        self.api = KubeApi(store)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._saver: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load persisted state (if any), bind the port and start serving."""
        if self.state_dir is not None and (self.state_dir / STATE_FILE).exists():
            self.store.load(self.state_dir / STATE_FILE)
            logger.info("kube state loaded from %s", self.state_dir / STATE_FILE)

        app = web.Application(
            middlewares=[self._tag_verb, self.control.middleware], client_max_size=MAX_BODY
        )
        self.control.render_error = error_response
        app.add_routes(routes(self.api, self.control))
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        ssl_context = None
        if self.tls is not None:
            from sandbox.tls import server_ssl_context

            ssl_context = server_ssl_context(self.tls)
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if ssl_context else 'http'}://{self.host}:{self.port}"
        self.api.server_address = f"{self.host}:{self.port}"
        if self.state_dir is not None:
            self._saver = asyncio.create_task(self._save_periodically())
        logger.info("Kubernetes API server listening on %s", self.url)

    async def stop(self) -> None:
        """End open watches, save the state, and close the port."""
        self.api.close_watches()
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
        self.save()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def save(self) -> None:
        if self.state_dir is not None:
            self.store.save(self.state_dir / STATE_FILE)
            self.store.changed.clear()

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(SAVE_INTERVAL)
            if self.store.changed.is_set():
                self.store.changed.clear()
                await asyncio.to_thread(self.store.save, self.state_dir / STATE_FILE)  # type: ignore[operator]

    @web.middleware
    async def _tag_verb(self, request: web.Request, handler: Any) -> web.StreamResponse:
        request[VERB_KEY] = verb_of(request)
        return await handler(request)

    def write_kubeconfig(
        self, path: Path, *, ca_file: Path | None = None, token: str = STATIC_TOKEN
    ) -> None:
        """Write a kubeconfig whose cluster, user and context are all the sandbox cluster."""
        cluster: dict[str, Any] = {"server": self.url}
        if ca_file is not None:
            cluster["certificate-authority"] = str(ca_file)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CLUSTER_NAME, "cluster": cluster}],
            "users": [{"name": CLUSTER_NAME, "user": {"token": token}}],
            "contexts": [
                {"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": CLUSTER_NAME}}
            ],
            "current-context": CLUSTER_NAME,
            "preferences": {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)


@contextlib.contextmanager
def serve_in_thread(store: KubeStore, **kwargs: Any) -> Iterator[KubeSandbox]:
    """Run a KubeSandbox on its own event loop in a background thread, for synchronous callers."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="kube-sandbox", daemon=True)
    thread.start()
    sandbox = KubeSandbox(store, **kwargs)
    try:
        asyncio.run_coroutine_threadsafe(sandbox.start(), loop).result(timeout=30)
        yield sandbox
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(sandbox.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
