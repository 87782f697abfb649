"""A local HTTP stand-in for the Alibaba and Huawei KMS tag APIs: tests, demos, rehearsals."""

from emulator.app import EMULATOR, build_app
from emulator.config import ConfigError, Credentials, EmulatorConfig, RateLimit
from emulator.core import Emulator
from emulator.ids import aliyun_key_id, aliyun_secret_name, huawei_key_id, resource_id
from emulator.inventory import GenerateSpec, Inventory, InventoryError, ResourceSet
from emulator.server import EmulatorServer, ThreadedEmulatorServer

__all__ = [
    "EMULATOR",
    "ConfigError",
    "Credentials",
    "Emulator",
    "EmulatorConfig",
    "EmulatorServer",
    "GenerateSpec",
    "Inventory",
    "InventoryError",
    "RateLimit",
    "ResourceSet",
    "ThreadedEmulatorServer",
    "aliyun_key_id",
    "aliyun_secret_name",
    "build_app",
    "huawei_key_id",
    "resource_id",
]
