"""Alibaba Cloud KMS (API version 2016-01-20)."""
