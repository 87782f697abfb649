"""The emulator as one aiohttp application: both providers' APIs plus ``/_emulator/``.

:func:`build_app` wires an :class:`~emulator.core.Emulator` (configuration, inventory,
counters, buckets) into routes; ``app[EMULATOR]`` gives tests the very objects the handlers
use (touch them from the loop's thread only).
"""

from __future__ import annotations

from aiohttp import web

from emulator.aliyun import AliyunApi
from emulator.aliyun_auth import AliyunAuthenticator
from emulator.config import EmulatorConfig
from emulator.core import Emulator
from emulator.huawei import HuaweiApi
from emulator.huawei_auth import HuaweiAuthenticator
from emulator.inspection import add_inspection_routes
from emulator.inventory import Inventory

# Huawei: a body over 12 MB needs token auth (providers.md §3.6); nothing here is that big.
MAX_BODY = 12 * 1024 * 1024

EMULATOR = web.AppKey("emulator", Emulator)


def build_app(
    config: EmulatorConfig | None = None, inventory: Inventory | None = None
) -> web.Application:
    """The aiohttp application serving both providers and the inspection API."""
    emulator = Emulator(
        config if config is not None else EmulatorConfig(),
        inventory if inventory is not None else Inventory(),
    )
    app = web.Application(client_max_size=MAX_BODY)
    app[EMULATOR] = emulator
    add_inspection_routes(app, emulator)
    AliyunApi(
        emulator.gate,
        emulator.inventory,
        emulator.config,
        AliyunAuthenticator(emulator.config, emulator.nonces),
    ).add_routes(app)
    HuaweiApi(
        emulator.gate, emulator.inventory, emulator.config, HuaweiAuthenticator(emulator.config)
    ).add_routes(app)
    return app
