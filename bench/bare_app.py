"""The baseline: a bare FastAPI hello-world, run under the same gunicorn settings as the service."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
