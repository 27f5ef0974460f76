"""The FastAPI application, built by a factory so tests build it with their own settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from autoloader_api.container import Container
from autoloader_api.routes import admin, ingestions, operations, runs
from autoloader_api.settings import ApiSettings
from shared.preflight import KafkaProbe
from shared.tenancy import Forbidden
from shared.triggers import Conflict, NotFound


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = Container.build(settings)
        app.state.container = container
        app.state.kafka_probe = KafkaProbe(settings.kafka)
        relay = None
        if settings.relay.enabled:
            relay = asyncio.create_task(container.relay.run(container.stop), name="outbox-relay")
        try:
            yield
        finally:
            container.stop.set()
            if relay is not None:
                await relay
            await app.state.kafka_probe.close()
            await container.engine.dispose()

    app = FastAPI(
        title="Autoloader",
        version="0.1.0",
        description="Ingest files from object storage into Apache Iceberg, exactly once.",
        lifespan=lifespan,
    )
    app.middleware("http")(_count_requests)
    app.include_router(ingestions.router)
    app.include_router(runs.router)
    app.include_router(operations.router)
    app.include_router(admin.router)
    _add_error_handlers(app)
    return app


REQUESTS = Counter("autoloader_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("autoloader_http_request_seconds", "HTTP request duration", ["route"])


async def _count_requests(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    began = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    REQUESTS.labels(request.method, template, str(response.status_code)).inc()
    LATENCY.labels(template).observe(time.perf_counter() - began)
    return response


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def not_found(_: Request, error: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(Forbidden)
    async def forbidden(_: Request, error: Forbidden) -> JSONResponse:
        body = {"detail": str(error), "field": error.field}
        return JSONResponse(body, status_code=status.HTTP_403_FORBIDDEN)

    @app.exception_handler(Conflict)
    async def conflict(_: Request, error: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(ValidationError)
    async def invalid_spec(request: Request, error: ValidationError) -> JSONResponse:
        # A PATCH is validated after merging; report its errors like any body error.
        body_errors = RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
        )
        return await request_validation_exception_handler(request, body_errors)
