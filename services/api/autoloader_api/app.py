"""The FastAPI application, built by a factory so tests build it with their own settings."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from autoloader_api.settings import ApiSettings
from shared.preflight import Check, check_database, check_kafka, run_checks


def dependency_checks(settings: ApiSettings) -> dict[str, Check]:
    return {
        "database": lambda: check_database(settings.database),
        "kafka": lambda: check_kafka(settings.kafka),
    }


def create_app(settings: ApiSettings) -> FastAPI:
    app = FastAPI(title="Autoloader", version="0.1.0")

    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        results = await run_checks(dependency_checks(settings))
        healthy = all(result.ok for result in results)
        body = {
            "status": "healthy" if healthy else "unhealthy",
            **{result.name: result.detail for result in results},
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    return app
