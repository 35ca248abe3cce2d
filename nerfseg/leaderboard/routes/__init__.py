"""The leaderboard web service's routes, one module-level ``APIRouter`` per concern: ``api`` (JSON, teams and
public), ``pages`` (the table and method pages), ``submit`` (upload form and status page) and ``docs`` (offline
Swagger UI). They reach the store and settings through the dependencies of ``context``."""
