"""A flow the Prefect smoke test deploys to the `autoloader` work pool."""

from prefect import flow, task


@task(retries=1)
def square(value: int) -> int:
    return value * value


@flow(name="autoloader-smoke")
def smoke(value: int = 3) -> int:
    return square(value)
