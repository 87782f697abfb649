"""A local HTTP stand-in for the Alibaba and Huawei KMS tag APIs, for tests, demos and rehearsals."""
