"""A JSON Schema validator for the keywords ``ANALYSIS_JSON_SCHEMA`` uses (the tests need no jsonschema package)."""

from __future__ import annotations

KINDS = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def validate(document: object, schema: dict, path: str = "$") -> list[str]:
    """The JSON Schema keywords ANALYSIS_JSON_SCHEMA uses; -> every violation found."""
    if "type" in schema:
        wanted = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_of(document, kind) for kind in wanted):
            return [f"{path}: {document!r} is not of type {wanted}"]
    problems: list[str] = []
    if "oneOf" in schema:
        fits = [option for option in schema["oneOf"] if not validate(document, option, path)]
        if len(fits) != 1:
            problems.append(f"{path}: matches {len(fits)} of oneOf")
    if "const" in schema and document != schema["const"]:
        problems.append(f"{path}: {document!r} != {schema['const']!r}")
    if "enum" in schema and document not in schema["enum"]:
        problems.append(f"{path}: {document!r} not in {schema['enum']}")
    if isinstance(document, int | float) and not isinstance(document, bool):
        problems += _number_problems(document, schema, path)
    if isinstance(document, dict):
        problems += _object_problems(document, schema, path)
    if isinstance(document, list):
        problems += _array_problems(document, schema, path)
    return problems


def _is_of(document: object, kind: str) -> bool:
    if kind == "integer":
        return isinstance(document, int) and not isinstance(document, bool)
    if kind == "number":
        return isinstance(document, int | float) and not isinstance(document, bool)
    return isinstance(document, KINDS[kind])


def _number_problems(document: float, schema: dict, path: str) -> list[str]:
    problems = []
    if "minimum" in schema and document < schema["minimum"]:
        problems.append(f"{path}: {document} < {schema['minimum']}")
    if "maximum" in schema and document > schema["maximum"]:
        problems.append(f"{path}: {document} > {schema['maximum']}")
    return problems


def _object_problems(document: dict, schema: dict, path: str) -> list[str]:
    problems = [f"{path}: missing {key!r}" for key in schema.get("required", []) if key not in document]
    if len(document) < schema.get("minProperties", 0):
        problems.append(f"{path}: fewer than {schema['minProperties']} properties")
    for key, value in document.items():
        if key in schema.get("properties", {}):
            problems += validate(value, schema["properties"][key], f"{path}.{key}")
        elif schema.get("additionalProperties") is False:
            problems.append(f"{path}: unexpected {key!r}")
        elif isinstance(schema.get("additionalProperties"), dict):
            problems += validate(value, schema["additionalProperties"], f"{path}.{key}")
    return problems


def _array_problems(document: list, schema: dict, path: str) -> list[str]:
    problems = []
    if len(document) < schema.get("minItems", 0) or len(document) > schema.get("maxItems", len(document)):
        problems.append(f"{path}: {len(document)} items")
    for index, item in enumerate(document):
        problems += validate(item, schema.get("items", {}), f"{path}[{index}]")
    return problems
