"""The jobs API (``bucketfn api``): presigned uploads, jobs, functions, dead letters.

``app`` builds the FastAPI application on a set of ``services``; ``server``
runs it on uvicorn with S3 and RabbitMQ behind it. The routes are one module
each (``uploads``, ``jobs``, ``functions``, ``deadletters``, ``health``);
``auth``, ``problems``, ``keys`` and ``limits`` are what they share.
"""

from runtime.http.jobs.app import create_app
from runtime.http.jobs.server import serve
from runtime.http.jobs.services import Services

__all__ = ["Services", "create_app", "serve"]
