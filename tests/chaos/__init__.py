"""`python -m tests.chaos`: randomized fault trials against the running native stack."""
