"""The operator's page: live verdicts, station health, history and feedback that becomes
training data, served by a process the station owns (Starlette on uvicorn; edge/hmi/process.py)."""
