"""Worker: runs tag jobs, batching, rate limiting and recording an outcome per resource."""
