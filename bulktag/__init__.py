"""bulktag: the command line and the runtime settings shared by every command."""

__version__ = "0.1.0"
