"""``python -m emulator``: the same as ``bulktag emulator``, without the rest of bulktag."""

from __future__ import annotations

import argparse
import logging
import sys

from emulator import cli


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description="Serve the Alibaba Cloud KMS and Huawei Cloud KMS tag APIs on loopback.",
    )
    cli.configure_parser(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
