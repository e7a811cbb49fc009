"""Schema checks in tests through the `jsonschema` library (every keyword the message
schemas use, `pattern`, `minLength` and `maxLength` included)."""

from __future__ import annotations

from jsonschema.validators import validator_for


def validate(value, schema: dict) -> list[str]:
    """Every way `value` breaks `schema`, as 'path: message' lines ([] when it is valid)."""
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    errors = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER).iter_errors(value)
    return [f"$.{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
