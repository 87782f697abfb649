"""Producer: validates tagging campaigns and enqueues their jobs through RQ."""
