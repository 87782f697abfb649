"""``bulktag dashboard``: a web page, a JSON API and Prometheus metrics over one Redis."""
