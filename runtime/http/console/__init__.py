"""The console: a page at ``/`` of the jobs API for watching files become results.

It shows each function with its trigger, queues and dead letters, the
invocations of the moment as the runtime reports them (its feed), the record
each left, and the dead letters grouped by cause with replay and purge; files
dropped on it upload straight to the store through a presigned POST.

Server-rendered: ``views`` decides what is shown, Jinja templates lay it out,
and one small script (``static/console.js``, no build step, nothing loaded
from elsewhere) fetches the fragments with the API's bearer token. ``hub``
keeps the live state while someone watches; ``pages`` and ``letters`` are the
routes; ``backend`` is what it needs from the process that mounts it.
"""

from runtime.http.console.app import mount
from runtime.http.console.hub import Hub

__all__ = ["Hub", "mount"]
