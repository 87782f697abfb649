"""Huawei Cloud KMS (DEW) key tags."""
