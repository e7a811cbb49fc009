"""The operator's page: live verdicts, station health, history and feedback that becomes
training data, served by the station process (Starlette on uvicorn, its own thread)."""
