"""Everything bulktag knows about the cloud providers: rules, signing, clients, error classes.

Producer (validation) and worker (batching, calls) both import from here, so a provider
limit is written down exactly once.
"""
